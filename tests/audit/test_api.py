import pytest

from apps.audit.models import AuditEntry
from apps.models.services import model_create, model_update

pytestmark = pytest.mark.django_db

FIELDS = {"sequence", "created_at", "actor", "action", "object_type", "object_id", "object_repr", "model", "before", "after", "request_id", "entry_hash"}


def test_an_auditor_reads_the_log_newest_first(api_for, auditor, model, owner):
    client = api_for(auditor)  # creating its token is audited too
    model_update(model=model, actor=owner, description="new card", team=None, tags=[])
    body = client.get("/api/v1/audit/").json()
    assert body["count"] == AuditEntry.objects.count()
    newest = body["results"][0]
    assert set(newest) == FIELDS
    assert newest["action"] == "model.updated" and newest["model"] == "sentiment" and newest["object_type"] == "models.registeredmodel"
    assert newest["after"]["description"] == "new card" and newest["actor"] == "owner"
    assert newest["entry_hash"] == AuditEntry.objects.get(sequence=newest["sequence"]).entry_hash
    assert [row["sequence"] for row in body["results"]] == sorted((row["sequence"] for row in body["results"]), reverse=True)


def test_the_api_filters_and_pages(api_for, auditor, model, owner, reviewer):
    other = model_create(name="other-model", actor=reviewer)
    for index in range(3):
        model_update(model=other, actor=reviewer, description=f"card {index}", team=None, tags=[])
    client = api_for(auditor)
    assert client.get("/api/v1/audit/?model=other-model").json()["count"] == 4
    assert client.get("/api/v1/audit/?actor=reviewer&action=model.updated").json()["count"] == 3
    assert client.get("/api/v1/audit/?q=sentiment").json()["count"] == AuditEntry.objects.filter(registered_model_id=model.pk).count()
    assert client.get("/api/v1/audit/?since=2000-01-01&until=2000-12-31").json()["count"] == 0
    paged = client.get("/api/v1/audit/?page_size=2&page=2").json()
    assert len(paged["results"]) == 2 and paged["next"] and paged["previous"]


def test_a_bad_filter_value_is_a_400(api_for, auditor, model):
    response = api_for(auditor).get("/api/v1/audit/?since=last-week")
    assert response.status_code == 400 and "since" in response.json()["error"]["fields"]


def test_non_auditors_get_403_json(api_for, model, owner, outsider):
    for user in (owner, outsider):
        response = api_for(user).get("/api/v1/audit/")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"


def test_without_credentials_it_is_401(client, model):
    assert client.get("/api/v1/audit/").status_code == 401


def test_the_log_is_read_only_through_the_api(api_for, auditor, model):
    assert api_for(auditor).post("/api/v1/audit/", {}, format="json").status_code == 405
