"""The models API: what a model creation request must look like."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("body", [{"name": "x1", "tags": 5}, {"name": "x2", "tags": "abc"}, {"name": "x3", "description": {"a": 1}}, {"name": "x4", "team": {"a": 1}}])
def test_model_creation_refuses_wrongly_typed_fields(api_for, owner, body):
    response = api_for(owner).post("/api/v1/models/", body, format="json")
    assert response.status_code == 400 and "error" in response.json()
