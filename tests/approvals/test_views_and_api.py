import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.approvals.models import ApprovalPolicy
from apps.models.permissions import Action
from apps.models.services import model_permission_grant
from apps.validation.services import validation_run
from apps.versions.models import ModelVersion
from tests.factories import promote, register_version
from tests.helpers import pending_production_request

pytestmark = pytest.mark.django_db


def test_the_approver_sees_the_request_in_the_inbox_with_the_evidence_and_approves(web_for, owner, reviewer, model):
    promote(register_version(model, owner, metrics={"acc": 0.8}, hyperparameters={"lr": 0.1}), requester=owner, approver=reviewer)
    request = pending_production_request(model, owner, metrics={"acc": 0.9}, hyperparameters={"lr": 0.01},
                                          datasets=[{"name": "imdb", "uri": "s3://d/imdb", "digest": "v3", "role": "training"}])
    client = web_for(reviewer)
    inbox = client.get("/approvals/").content.decode()
    assert f"/approvals/{request.pk}/" in inbox
    page = client.get(f"/approvals/{request.pk}/").content.decode()
    for evidence in ("Ship: +2 points", "Compared with production", "+0.1", 'class="changed"', "imdb", "validation-panel", "Quality gate", "Approve"):
        assert evidence in page, evidence
    response = client.post(f"/approvals/{request.pk}/approve/", {"comment": "ok"}, follow=True)
    assert "Approved" in response.content.decode()
    assert ModelVersion.objects.get(stage="production").number == 2


def test_the_requester_sees_no_approve_button_and_a_forged_approval_is_refused(web_for, owner, model):
    request = pending_production_request(model, owner)
    client = web_for(owner)
    assert f"/approvals/{request.pk}/" not in client.get("/approvals/").content.decode()
    page = client.get(f"/approvals/{request.pk}/").content.decode()
    assert 'id="approve-button"' not in page and "someone else must approve" in page
    client.post(f"/approvals/{request.pk}/approve/", {"comment": "mine"})
    request.refresh_from_db()
    assert request.status == "pending"


def test_self_approval_is_refused_through_the_api(api_for, owner, model):
    request = pending_production_request(model, owner)
    response = api_for(owner).post(f"/api/v1/transition-requests/{request.pk}/approve/", {"comment": "me"}, format="json")
    assert response.status_code == 403 and "someone else" in response.json()["error"]["message"]


def test_the_api_flow_request_approve_and_read_back(api_for, owner, reviewer, model):
    version = register_version(model, owner)
    validation_run(job_id=version.validation_jobs.get().pk)
    owner_api, reviewer_api = api_for(owner), api_for(reviewer)
    staging = owner_api.post(f"/api/v1/models/{model.name}/versions/1/transitions/", {"to_stage": "staging", "comment": "ready"}, format="json")
    assert staging.status_code == 201 and staging.json()["status"] == "applied"
    created = owner_api.post(f"/api/v1/models/{model.name}/versions/1/transitions/", {"to_stage": "production", "comment": "ship"}, format="json").json()
    assert created["status"] == "pending" and created["required_approvals"] == 1 and created["approvals"] == []
    approved = reviewer_api.post(f"/api/v1/transition-requests/{created['id']}/approve/", {"comment": "ok"}, format="json").json()
    assert approved["status"] == "applied" and approved["approvals"][0]["approver"] == "reviewer"
    assert reviewer_api.get(f"/api/v1/models/{model.name}/stages/production/").json()["number"] == 1


def test_reject_and_withdraw_through_the_api(api_for, owner, reviewer, model):
    first = pending_production_request(model, owner)
    rejected = api_for(reviewer).post(f"/api/v1/transition-requests/{first.pk}/reject/", {"comment": "wrong split"}, format="json")
    assert rejected.json()["status"] == "rejected"
    second = pending_production_request(model, owner)
    assert api_for(reviewer).post(f"/api/v1/transition-requests/{second.pk}/withdraw/", format="json").status_code == 403
    assert api_for(owner).post(f"/api/v1/transition-requests/{second.pk}/withdraw/", format="json").json()["status"] == "withdrawn"


def test_an_outsider_sees_no_request_anywhere(web_for, api_for, owner, outsider, model):
    request = pending_production_request(model, owner)
    assert f"/approvals/{request.pk}/" not in web_for(outsider).get("/approvals/").content.decode()
    assert web_for(outsider).get(f"/approvals/{request.pk}/").status_code == 404
    assert web_for(outsider).post(f"/approvals/{request.pk}/approve/").status_code == 404
    api = api_for(outsider)
    assert api.get(f"/api/v1/transition-requests/{request.pk}/").status_code == 404
    assert api.post(f"/api/v1/transition-requests/{request.pk}/approve/", format="json").status_code == 404
    assert api.post(f"/api/v1/models/{model.name}/rollback/", {"reason": "x"}, format="json").status_code == 404
    assert api.get(f"/api/v1/models/{model.name}/history/production/").status_code == 404
    assert web_for(outsider).get(f"/models/{model.name}/history/").status_code == 404
    assert web_for(outsider).get(f"/models/{model.name}/approval-policy/").status_code == 404


def test_the_inbox_query_count_does_not_grow_with_requests(web_for, owner, reviewer, model):
    client = web_for(reviewer)
    pending_production_request(model, owner)

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/approvals/").status_code == 200
        return len(ctx.captured_queries)

    few = count()
    for _ in range(8):
        pending_production_request(model, owner)
    assert count() == few


def test_rollback_from_the_model_page_and_the_api_and_the_history_at_a_time(web_for, api_for, owner, reviewer, model):
    first, second = register_version(model, owner), register_version(model, owner)
    promote(first, requester=owner, approver=reviewer)
    while_first = timezone.now()
    promote(second, requester=owner, approver=reviewer)
    client = web_for(reviewer)
    page = client.get(f"/models/{model.name}/").content.decode()
    assert 'id="rollback-form"' in page
    response = client.post(f"/models/{model.name}/rollback/", {"reason": "error rate up"}, follow=True)
    assert "rolled back to v1" in response.content.decode()
    api = api_for(reviewer)
    rolled = api.post(f"/api/v1/models/{model.name}/rollback/", {"reason": "fixed", "to_version": 2}, format="json")
    assert rolled.status_code == 201 and rolled.json()["version"] == 2 and rolled.json()["kind"] == "rollback"
    history = api.get(f"/api/v1/models/{model.name}/history/production/").json()["history"]
    assert [(h["version"], h["kind"]) for h in history] == [(2, "rollback"), (1, "rollback"), (2, "promotion"), (1, "promotion")]
    assert api.get(f"/api/v1/models/{model.name}/history/production/", {"at": while_first.isoformat()}).json()["version"] == 1
    assert api.get(f"/api/v1/models/{model.name}/history/production/", {"at": "yesterday"}).status_code == 400
    at_page = client.get(f"/models/{model.name}/history/", {"at": while_first.strftime("%Y-%m-%dT%H:%M:%S.%f")}).content.decode()
    assert 'id="at-result"' in at_page and "<strong>v1</strong>" in at_page


def test_deployments_report_through_the_api_and_drift_shows_on_the_model_page(web_for, api_for, owner, reviewer, model):
    first, second = register_version(model, owner), register_version(model, owner)
    promote(first, requester=owner, approver=reviewer)
    api = api_for(owner)
    assert api.put(f"/api/v1/models/{model.name}/deployments/prod-eu/", {"version": 1}, format="json").status_code == 200
    promote(second, requester=owner, approver=reviewer)
    page = web_for(owner).get(f"/models/{model.name}/").content.decode()
    assert "pointer at v2, prod-eu still on v1 for 0 min" in page
    api.put(f"/api/v1/models/{model.name}/deployments/prod-eu/", {"version": 2}, format="json")
    assert "in sync" in web_for(owner).get(f"/models/{model.name}/").content.decode()
    assert api.put(f"/api/v1/models/{model.name}/deployments/Prod EU/", {"version": 2}, format="json").status_code == 400
    assert api.put(f"/api/v1/models/{model.name}/deployments/prod-eu/", {"version": 9}, format="json").status_code == 400
    for bad in ({"version": "2"}, {"version": True}, {}):
        refused = api.put(f"/api/v1/models/{model.name}/deployments/prod-eu/", bad, format="json")
        assert refused.json()["error"]["fields"] == {"version": ['Give the version number the environment serves, e.g. {"version": 7}.']}
    assert api_for(reviewer).put(f"/api/v1/models/{model.name}/deployments/prod-eu/", {"version": 2}, format="json").status_code == 403


def test_a_manager_edits_the_approval_policy(web_for, owner, reviewer, model):
    response = web_for(owner).post(f"/models/{model.name}/approval-policy/", {"staging_required": "1", "production_required": "2"})
    assert response.status_code == 302
    assert dict(ApprovalPolicy.objects.values_list("target_stage", "required_approvals")) == {"staging": 1, "production": 2}
    assert web_for(reviewer).get(f"/models/{model.name}/approval-policy/").status_code == 403


def test_the_rollback_form_appears_only_when_there_is_something_to_roll_back_to(web_for, owner, reviewer, model):
    first, second = register_version(model, owner), register_version(model, owner)
    promote(first, requester=owner, approver=reviewer)
    assert 'id="rollback-form"' not in web_for(reviewer).get(f"/models/{model.name}/").content.decode()
    promote(second, requester=owner, approver=reviewer)
    page = web_for(reviewer).get(f"/models/{model.name}/").content.decode()
    assert 'id="rollback-form"' in page and '<option value="1">v1</option>' in page


def test_bad_rollback_and_history_inputs_are_400s(api_for, owner, reviewer, model):
    promote(register_version(model, owner), requester=owner, approver=reviewer)
    api = api_for(owner)
    for body in ({"reason": "x", "to_version": "abc"}, {"reason": "x", "to_version": [1]}, {"reason": "x", "to_version": True}):
        response = api.post(f"/api/v1/models/{model.name}/rollback/", body, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["fields"] == {"to_version": ['Give a version number, e.g. {"to_version": 3}, or leave it out for the previous one.']}
    assert api.get(f"/api/v1/models/{model.name}/history/production/", {"at": "2026-13-45T10:00:00Z"}).status_code == 400


def test_request_and_decision_bodies_with_wrongly_typed_fields_are_400s_naming_the_field(api_for, owner, reviewer, model):
    version = register_version(model, owner)
    api = api_for(owner)
    url = f"/api/v1/models/{model.name}/versions/{version.number}/transitions/"
    response = api.post(url, {"to_stage": "staging", "comment": 5}, format="json")
    assert response.status_code == 400 and response.json()["error"]["fields"] == {"comment": ["must be a string."]}
    assert "Send a JSON object with 'to_stage'" in api.post(url, [1], format="json").json()["error"]["message"]
    created = api.post(url, {"to_stage": "staging", "justification": "tried"}, format="json")
    assert created.status_code == 201 and created.json()["justification"] == "tried"
    pending = pending_production_request(model, owner)
    refused = api_for(reviewer).post(f"/api/v1/transition-requests/{pending.pk}/approve/", {"comment": ["ok"]}, format="json")
    assert refused.status_code == 400 and refused.json()["error"]["fields"] == {"comment": ["must be a string."]}
    assert not pending.approvals.exists()


@pytest.mark.parametrize("route", ["approve", "reject", "override-quality"])
def test_a_viewer_is_refused_a_decision_before_its_body_is_read(api_for, owner, make_user, model, route):
    viewer = make_user("viewer")
    model_permission_grant(model=model, actor=owner, action=Action.VIEW, user=viewer)
    request = pending_production_request(model, owner)
    # A body the JSON parser would refuse with a 400: a 403 proves the permission was judged first.
    answer = api_for(viewer).post(f"/api/v1/transition-requests/{request.pk}/{route}/", "{not json", content_type="application/json")
    assert answer.status_code == 403, answer.content


def test_a_viewer_is_refused_the_rollback_page_before_its_form_is_read(web_for, owner, make_user, model):
    viewer = make_user("viewer")
    model_permission_grant(model=model, actor=owner, action=Action.VIEW, user=viewer)
    refused = web_for(viewer).post(f"/models/{model.name}/rollback/", {"reason": "x" * 6000, "to_version": "not a number"})
    assert refused.status_code == 403


def test_a_viewer_is_refused_a_transition_request_and_a_rollback_before_the_body_is_read(api_for, owner, make_user, model, version):
    viewer = make_user("viewer")
    model_permission_grant(model=model, actor=owner, action=Action.VIEW, user=viewer)
    client = api_for(viewer)
    for url in (f"/api/v1/models/{model.name}/versions/{version.number}/transitions/", f"/api/v1/models/{model.name}/rollback/"):
        answer = client.post(url, "{not json", content_type="application/json")
        assert answer.status_code == 403, (url, answer.content)
