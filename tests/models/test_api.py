"""The models API: what a model creation request must look like."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("body", [{"name": "x1", "tags": 5}, {"name": "x2", "tags": "abc"}, {"name": "x3", "description": {"a": 1}}, {"name": "x4", "team": {"a": 1}}])
def test_model_creation_refuses_wrongly_typed_fields(api_for, owner, body):
    response = api_for(owner).post("/api/v1/models/", body, format="json")
    assert response.status_code == 400 and "error" in response.json()


@pytest.mark.parametrize(
    "body, field, message",
    [
        ({"description": "d"}, "name", "is required: the model's name"),
        ({"name": 5}, "name", "must be a string."),
        ({"name": "x5", "description": {"a": 1}}, "description", "must be a string."),
        ({"name": "x6", "tags": [1]}, "tags", "Tag #1 must be a string."),
        ({"name": "x8", "tags": "nlp"}, "tags", "must be a list of strings"),
        ({"name": "x7", "team": "no-such-team"}, "team", "No team named 'no-such-team'."),
    ],
)
def test_model_creation_names_each_wrong_field_and_says_what_to_send(api_for, owner, body, field, message):
    response = api_for(owner).post("/api/v1/models/", body, format="json")
    assert response.status_code == 400 and message in " ".join(map(str, response.json()["error"]["fields"][field]))


def test_a_model_created_with_an_empty_team_has_none_and_a_non_object_body_is_refused(api_for, owner):
    api = api_for(owner)
    created = api.post("/api/v1/models/", {"name": "churn", "team": "", "tags": [" b ", "a", "b"]}, format="json")
    assert created.status_code == 201 and created.json()["team"] is None and created.json()["tags"] == ["a", "b"]
    assert "Send a JSON object: 'name' (string)" in api.post("/api/v1/models/", [1], format="json").json()["error"]["message"]
