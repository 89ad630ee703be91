import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit import services as audit
from apps.audit.models import AuditEntry
from apps.models.services import model_create, model_update
from tests.factories import streamed
from tests.helpers import queries_for

pytestmark = pytest.mark.django_db


def _fill(model, actor, count: int) -> None:
    for index in range(count):
        audit.record(
            actor=actor, obj=model, action="test.filled", registered_model_id=model.pk,
            before={"index": index - 1}, after={"index": index, "note": "x" * 60},
        )


def _csv_rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(streamed(response).decode())))


def test_an_auditor_sees_the_whole_log_with_collapsible_changes(web_for, auditor, model, owner, outsider):
    model_create(name="other-model", actor=outsider)
    model_update(model=model, actor=owner, description="new card", team=None, tags=["nlp"])
    page = web_for(auditor).get("/audit/").content.decode()
    assert "model.updated" in page and "other-model" in page and "sentiment" in page
    assert "<details>" in page and "<b>description</b>" in page and "new card" in page
    assert 'href="/audit/"' in page  # the navigation link


def test_a_superuser_is_an_auditor(web_for, superuser, model):
    assert web_for(superuser).get("/audit/").status_code == 200


def test_a_group_can_grant_the_auditor_permission(web_for, make_user, model):
    from django.contrib.auth.models import Group, Permission

    group = Group.objects.create(name="compliance")
    group.permissions.add(Permission.objects.get(content_type__app_label="audit", codename="view_auditentry"))
    member = make_user("compliance-member")
    member.groups.add(group)
    assert web_for(member).get("/audit/").status_code == 200
    assert 'href="/audit/"' in web_for(member).get("/").content.decode()  # the link, read with the session user


def test_an_outsider_gets_403_on_the_global_log(web_for, outsider, model):
    response = web_for(outsider).get("/audit/")
    assert response.status_code == 403


def test_a_model_manager_who_is_not_an_auditor_gets_403_and_no_link(web_for, owner, model):
    client = web_for(owner)
    assert client.get("/audit/").status_code == 403
    assert client.get("/audit/?format=csv").status_code == 403
    assert 'href="/audit/"' not in client.get("/").content.decode()


def test_viewers_of_a_model_see_its_trail_only(web_for, model, owner, reviewer):
    other = model_create(name="other-model", actor=owner)
    model_update(model=other, actor=owner, description="other card", team=None, tags=[])
    for user in (owner, reviewer):
        page = web_for(user).get(f"/models/{model.name}/audit/").content.decode()
        assert "model.created" in page
        assert "other card" not in page and "other-model" not in page


def test_entries_about_permissions_and_webhooks_are_for_managers_only(web_for, model, owner, reviewer):
    assert "model.permission_granted" in web_for(owner).get(f"/models/{model.name}/audit/").content.decode()
    viewer_page = web_for(reviewer).get(f"/models/{model.name}/audit/").content.decode()
    viewer_csv = web_for(reviewer).get(f"/models/{model.name}/audit/?format=csv")
    assert "model.permission_granted" not in viewer_page
    assert "model.permission_granted" not in b"".join(viewer_csv.streaming_content).decode()


def test_an_outsider_gets_404_on_a_models_trail(web_for, model, outsider):
    client = web_for(outsider)
    assert client.get(f"/models/{model.name}/audit/").status_code == 404
    assert client.get(f"/models/{model.name}/audit/?format=csv").status_code == 404
    assert client.get("/models/no-such-model/audit/").status_code == 404


def test_the_filters_narrow_the_log(web_for, auditor, model, owner, reviewer):
    other = model_create(name="other-model", actor=reviewer)
    model_update(model=other, actor=reviewer, description="card", team=None, tags=[])
    client = web_for(auditor)

    def sequences(query: str) -> set[int]:
        return {int(row["sequence"]) for row in _csv_rows(client.get(f"/audit/?format=csv&{query}"))}

    everything = set(AuditEntry.objects.values_list("sequence", flat=True))
    assert sequences("") == everything
    assert sequences("action=model.updated") == set(AuditEntry.objects.filter(action="model.updated").values_list("sequence", flat=True))
    assert sequences("actor=REVIEWER") == set(AuditEntry.objects.filter(actor_name="reviewer").values_list("sequence", flat=True))
    assert sequences("model=other-model") == set(AuditEntry.objects.filter(registered_model_id=other.pk).values_list("sequence", flat=True))
    assert sequences("q=other") == sequences("model=other-model")
    today = timezone.localdate()
    assert sequences(f"since={today}&until={today}") == everything
    assert sequences(f"since={today + timedelta(days=1)}") == set()
    assert sequences(f"until={today - timedelta(days=1)}") == set()
    page = client.get("/audit/?action=model.updated&actor=reviewer").content.decode()
    assert "other-model" in page and "sentiment</a>" not in page


def test_a_bad_date_is_reported_and_ignored(web_for, auditor, model):
    response = web_for(auditor).get("/audit/?since=yesterday")
    assert response.status_code == 200
    assert "Some filters were ignored" in response.content.decode() and "model.created" in response.content.decode()


def test_the_log_pages_by_fifty_and_the_csv_streams_every_filtered_row(web_for, auditor, model, owner):
    _fill(model, owner, 60)
    client = web_for(auditor)
    first = client.get("/audit/").content.decode()
    assert "Page 1 of 2" in first
    response = client.get("/audit/?format=csv&page=2&action=test.filled")
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="audit-log-')
    rows = _csv_rows(response)
    assert len(rows) == 60
    assert rows[0]["action"] == "test.filled" and rows[0]["model"] == "sentiment" and rows[0]["after"].startswith('{"index": 59')
    assert rows[0]["entry_hash"] == AuditEntry.objects.order_by("-sequence").first().entry_hash


def test_the_models_csv_holds_only_its_entries(web_for, model, owner, reviewer):
    model_create(name="other-model", actor=owner)
    response = web_for(reviewer).get(f"/models/{model.name}/audit/?format=csv")
    assert 'filename="audit-sentiment-' in response["Content-Disposition"]
    assert {row["model"] for row in _csv_rows(response)} == {"sentiment"}


def test_csv_cells_that_look_like_formulas_stay_text(web_for, auditor, make_user, model):
    sneaky = make_user("=cmd|calc")
    audit.record(actor=sneaky, obj=model, action="test.formula", registered_model_id=model.pk)
    rows = _csv_rows(web_for(auditor).get("/audit/?format=csv&action=test.formula"))
    assert rows[0]["actor"] == "'=cmd|calc"


def test_the_global_page_query_count_does_not_grow_with_entries(web_for, auditor, model, owner):
    client = web_for(auditor)
    _fill(model, owner, 5)
    few = queries_for(client, "/audit/")
    _fill(model, owner, 55)
    many = queries_for(client, "/audit/")
    assert AuditEntry.objects.count() > 60
    assert many == few


def test_the_model_page_query_count_does_not_grow_with_entries(web_for, reviewer, model, owner):
    client = web_for(reviewer)
    _fill(model, owner, 5)
    few = queries_for(client, f"/models/{model.name}/audit/")
    _fill(model, owner, 55)
    assert queries_for(client, f"/models/{model.name}/audit/") == few
