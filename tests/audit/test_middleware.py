import re

import pytest

from apps.audit.models import AuditEntry
from apps.audit.request_id import current_request_id

pytestmark = pytest.mark.django_db

UUID_HEX = re.compile(r"[0-9a-f]{32}")


def test_a_safe_request_id_is_kept_echoed_and_recorded(api_for, owner):
    response = api_for(owner).post("/api/v1/models/", {"name": "churn"}, format="json", HTTP_X_REQUEST_ID="ci-run.42:a_b")
    assert response.status_code == 201
    assert response["X-Request-ID"] == "ci-run.42:a_b"
    assert AuditEntry.objects.get(action="model.created").request_id == "ci-run.42:a_b"


@pytest.mark.parametrize("header", ["has space", "x" * 65, "<script>", "a\tb", "-starts-with-dash", "semi;colon", "é"])
def test_an_unsafe_request_id_is_replaced(api_for, owner, header):
    response = api_for(owner).post("/api/v1/models/", {"name": "churn"}, format="json", HTTP_X_REQUEST_ID=header)
    assert UUID_HEX.fullmatch(response["X-Request-ID"])
    assert AuditEntry.objects.get(action="model.created").request_id == response["X-Request-ID"]


def test_every_response_gets_an_id_and_page_writes_are_recorded_with_it(web_for, owner):
    response = web_for(owner).post("/models/new/", {"name": "churn", "description": ""})
    assert response.status_code == 302 and UUID_HEX.fullmatch(response["X-Request-ID"])
    assert AuditEntry.objects.get(action="model.created").request_id == response["X-Request-ID"]
    assert UUID_HEX.fullmatch(web_for(owner).get("/accounts/login/")["X-Request-ID"])


def test_outside_a_request_there_is_no_request_id(client):
    client.get("/healthz")
    assert current_request_id() == ""
