"""The quality gate that decides is the one evaluated when the deciding approval is given, against production then."""

import pytest

from apps.approvals.models import Approval
from apps.approvals.services import transition_request_create
from apps.audit.models import AuditEntry
from apps.validation.services import validation_policy_update, validation_run
from apps.versions.models import ModelVersion
from tests.factories import promote, register_version

pytestmark = pytest.mark.django_db

ACCURACY = {"metric": "accuracy", "direction": "higher", "allowed_regression": 0.01, "regression_kind": "absolute", "min_value": None, "max_value": None}


def _validated(model, owner, accuracy: float):
    version = register_version(model, owner, metrics={"accuracy": accuracy})
    validation_run(job_id=version.validation_jobs.get().pk)
    version.refresh_from_db()
    return version


def _production_request(model, owner, version):
    transition_request_create(version=version, to_stage="staging", actor=owner, justification="ready")
    return transition_request_create(version=version, to_stage="production", actor=owner, justification="Two points better than v2")


@pytest.fixture
def demo(model, owner, reviewer):
    """The demo story: v2 in production; v3 requested and passing against v2; then v4 approved into production."""
    validation_policy_update(model=model, actor=owner, required_file_patterns=[], pinned_baseline=None, rules=[ACCURACY])
    promote(_validated(model, owner, 0.86), requester=owner, approver=reviewer)
    promote(_validated(model, owner, 0.89), requester=owner, approver=reviewer)
    v3 = _validated(model, owner, 0.91)
    assert v3.validation_jobs.get().quality_status == "passed" and v3.validation_jobs.get().quality_baseline.number == 2
    request = _production_request(model, owner, v3)
    promote(_validated(model, owner, 0.93), requester=owner, approver=reviewer)
    assert ModelVersion.objects.get(stage="production").number == 4
    return request


def test_approving_the_older_request_after_a_better_version_reached_production_is_refused(web_for, demo, reviewer):
    response = web_for(reviewer).post(f"/approvals/{demo.pk}/approve/", {"comment": "passed at validation"}, follow=True)
    page = response.content.decode()
    assert "The quality gate failed against v4 (in production now)" in page and "accuracy" in page
    assert ModelVersion.objects.get(stage="production").number == 4
    demo.refresh_from_db()
    assert demo.status == "pending" and not Approval.objects.filter(transition_request=demo).exists()


def test_the_review_page_shows_the_verdict_now_and_says_the_baseline_moved(web_for, demo, owner, reviewer):
    page = web_for(reviewer).get(f"/approvals/{demo.pk}/").content.decode()
    assert 'data-quality="failed"' in page and "in production now" in page
    assert 'id="baseline-moved"' in page and "validation judged v3 against v2 (passed)" in page
    assert 'id="override-control"' not in page, "only managers may override"
    assert 'id="override-control"' in web_for(owner).get(f"/approvals/{demo.pk}/").content.decode()


def test_the_api_shows_the_verdict_now_and_refuses_the_approval_with_a_400(api_for, demo, reviewer):
    api = api_for(reviewer)
    gate = api.get(f"/api/v1/transition-requests/{demo.pk}/").json()["quality_gate"]
    assert (gate["status"], gate["baseline"], gate["baseline_moved"]) == ("failed", 4, True)
    assert gate["at_validation"] == {"status": "passed", "baseline": 2}
    assert gate["problems"] and "failed against v4" in gate["problems"][0]
    refused = api.post(f"/api/v1/transition-requests/{demo.pk}/approve/", {"comment": "ok"}, format="json")
    assert refused.status_code == 400 and "quality gate failed against v4" in refused.json()["error"]["message"]
    assert ModelVersion.objects.get(stage="production").number == 4


def test_a_managers_override_lets_the_approval_through_and_both_are_audited(web_for, demo, owner, reviewer):
    response = web_for(owner).post(f"/approvals/{demo.pk}/override/", {"reason": "v3 is half the latency; we accept -0.02 accuracy."}, follow=True)
    assert "Quality gate overridden" in response.content.decode()
    assert 'id="override-control"' not in web_for(owner).get(f"/approvals/{demo.pk}/").content.decode()
    web_for(reviewer).post(f"/approvals/{demo.pk}/approve/", {"comment": "accepting the trade-off"})
    demo.refresh_from_db()
    assert demo.status == "applied" and ModelVersion.objects.get(stage="production").number == 3
    assert demo.gate_at_decision == {"status": "failed", "baseline": 4, "overridden": True}
    assert AuditEntry.objects.get(action="request.quality_override").after["baseline"] == 4
    assert AuditEntry.objects.filter(action="request.applied", after__quality_gate__overridden=True).exists()


def test_an_override_stops_counting_once_the_baseline_moves(web_for, api_for, model, owner, reviewer):
    validation_policy_update(model=model, actor=owner, required_file_patterns=[], pinned_baseline=None, rules=[ACCURACY])
    promote(_validated(model, owner, 0.90), requester=owner, approver=reviewer)
    weaker = _production_request(model, owner, _validated(model, owner, 0.85))
    web_for(owner).post(f"/approvals/{weaker.pk}/override/", {"reason": "Needed for the new tokenizer, accepted."})
    weaker.refresh_from_db()
    assert weaker.override_baseline.number == 1
    promote(_validated(model, owner, 0.95), requester=owner, approver=reviewer)
    refused = api_for(reviewer).post(f"/api/v1/transition-requests/{weaker.pk}/approve/", format="json")
    message = refused.json()["error"]["message"]
    assert refused.status_code == 400 and "failed against v3" in message and "override given against v1 no longer counts" in message
    page = web_for(owner).get(f"/approvals/{weaker.pk}/").content.decode()
    assert "this override no longer counts" in page and 'id="override-control"' in page


def test_no_override_is_offered_or_accepted_while_the_gate_passes(web_for, model, owner, reviewer):
    validation_policy_update(model=model, actor=owner, required_file_patterns=[], pinned_baseline=None, rules=[ACCURACY])
    promote(_validated(model, owner, 0.80), requester=owner, approver=reviewer)
    better = _production_request(model, owner, _validated(model, owner, 0.85))
    client = web_for(owner)
    page = client.get(f"/approvals/{better.pk}/").content.decode()
    assert 'data-quality="passed"' in page and 'id="override-control"' not in page and 'id="baseline-moved"' not in page
    response = client.post(f"/approvals/{better.pk}/override/", {"reason": "Just in case, for the record."}, follow=True)
    assert "nothing to override" in response.content.decode()
    better.refresh_from_db()
    assert better.override_reason == ""


def test_a_pinned_baseline_is_the_one_judged_at_approval(api_for, model, owner, reviewer):
    first = _validated(model, owner, 0.95)
    promote(first, requester=owner, approver=reviewer)
    promote(_validated(model, owner, 0.80), requester=owner, approver=reviewer)
    validation_policy_update(model=model, actor=owner, required_file_patterns=[], pinned_baseline=first, rules=[ACCURACY])
    request = _production_request(model, owner, _validated(model, owner, 0.90))
    gate = api_for(reviewer).get(f"/api/v1/transition-requests/{request.pk}/").json()["quality_gate"]
    assert (gate["status"], gate["baseline"], gate["baseline_pinned"]) == ("failed", 1, True)
    assert api_for(reviewer).post(f"/api/v1/transition-requests/{request.pk}/approve/", format="json").status_code == 400


def test_the_override_through_the_api_is_for_managers_and_then_the_approval_applies(api_for, demo, owner, reviewer):
    url = f"/api/v1/transition-requests/{demo.pk}/override-quality/"
    assert api_for(reviewer).post(url, {"reason": "I think it is fine, honestly."}, format="json").status_code == 403
    assert api_for(owner).post(url, {"reason": "short"}, format="json").status_code == 400
    overridden = api_for(owner).post(url, {"reason": "Half the latency; the accuracy drop is accepted."}, format="json").json()
    assert overridden["override_baseline"] == 4 and overridden["quality_gate"]["override_holds"] is True
    assert overridden["quality_gate"]["problems"] == []
    applied = api_for(reviewer).post(f"/api/v1/transition-requests/{demo.pk}/approve/", format="json").json()
    assert applied["status"] == "applied" and applied["quality_gate"] == {"decided": {"status": "failed", "baseline": 4, "overridden": True}}
