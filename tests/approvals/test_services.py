import pickle

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404

from apps.versions.aliases import PRODUCTION_ALIAS
from apps.approvals.models import Approval
from apps.approvals.selectors import transition_request_is_stale
from apps.approvals.services import (
    approval_policy_update,
    alias_rollback,
    transition_request_approve,
    transition_request_create,
    transition_request_override_quality,
    transition_request_reject,
    transition_request_withdraw,
)
from apps.audit.models import AuditEntry
from apps.models.permissions import Action
from apps.models.services import model_permission_grant
from apps.validation.models import ValidationJob
from apps.validation.services import validation_policy_update, validation_run
from apps.versions.models import ModelVersion, ProductionPointerChange
from tests.factories import promote, register_version, validated_version
from tests.helpers import RunsSystem

pytestmark = pytest.mark.django_db


def _production_request(model, owner, **kwargs):
    version = validated_version(model, owner, **kwargs)
    transition_request_create(version=version, to_stage="staging", actor=owner, justification="ready")
    return transition_request_create(version=version, to_stage="production", actor=owner, justification="ship it")


@pytest.fixture
def second_approver(make_user, model, owner):
    user = make_user("approver2")
    for action in (Action.VIEW, Action.APPROVE_TRANSITION):
        model_permission_grant(model=model, actor=owner, action=action, user=user)
    return user


def test_staging_needs_no_approval_by_default_and_applies_at_once(model, owner):
    version = register_version(model, owner)
    request = transition_request_create(version=version, to_stage="staging", actor=owner, justification="try it")
    version.refresh_from_db()
    assert request.status == "applied" and version.stage == "staging"


def test_the_last_required_approval_applies_the_transition(model, owner, reviewer):
    request = _production_request(model, owner)
    assert request.status == "pending"
    transition_request_approve(transition_request=request, actor=reviewer, comment="looks good")
    request.refresh_from_db()
    assert request.status == "applied" and request.version.stage == "production"
    assert AuditEntry.objects.filter(action="request.applied").exists()


def test_nobody_approves_their_own_request_not_even_a_superuser(model, make_user, reviewer):
    admin = make_user("root", is_superuser=True)
    request = _production_request(model, admin)
    with pytest.raises(PermissionDenied, match="someone else"):
        transition_request_approve(transition_request=request, actor=admin)
    assert not Approval.objects.exists()


def test_nobody_approves_twice(model, owner, reviewer, second_approver):
    approval_policy_update(model=model, actor=owner, policies={"production": (2, None)})
    request = _production_request(model, owner)
    transition_request_approve(transition_request=request, actor=reviewer)
    with pytest.raises(ValidationError, match="already approved"):
        transition_request_approve(transition_request=request, actor=reviewer)
    request.refresh_from_db()
    assert request.status == "pending"
    transition_request_approve(transition_request=request, actor=second_approver)
    request.refresh_from_db()
    assert request.status == "applied"


def test_approvals_must_come_from_the_policy_group(model, owner, reviewer, second_approver):
    leads = Group.objects.create(name="leads")
    second_approver.groups.add(leads)
    approval_policy_update(model=model, actor=owner, policies={"production": (1, leads)})
    request = _production_request(model, owner)
    with pytest.raises(PermissionDenied, match="members of 'leads'"):
        transition_request_approve(transition_request=request, actor=reviewer)
    transition_request_approve(transition_request=request, actor=second_approver)
    request.refresh_from_db()
    assert request.status == "applied"


def test_outsiders_and_viewers_cannot_approve(model, owner, outsider, make_user):
    viewer = make_user("viewer")
    model_permission_grant(model=model, actor=owner, action=Action.VIEW, user=viewer)
    request = _production_request(model, owner)
    with pytest.raises(Http404):
        transition_request_approve(transition_request=request, actor=outsider)
    with pytest.raises(PermissionDenied):
        transition_request_approve(transition_request=request, actor=viewer)


def test_production_needs_finished_passed_validation(model, owner, reviewer):
    version = register_version(model, owner)
    transition_request_create(version=version, to_stage="staging", actor=owner, justification="ready")
    request = transition_request_create(version=version, to_stage="production", actor=owner, justification="ship")
    with pytest.raises(ValidationError, match="Validation has not finished"):
        transition_request_approve(transition_request=request, actor=reviewer)
    assert not Approval.objects.exists(), "a refused final approval leaves nothing behind"


def test_a_failed_quality_gate_blocks_until_a_manager_overrides_with_a_reason(model, owner, reviewer):
    promote(validated_version(model, owner, metrics={"acc": 0.9}), requester=owner, approver=reviewer)
    rules = [{"metric": "acc", "direction": "higher", "allowed_regression": 0.0, "regression_kind": "absolute", "min_value": None, "max_value": None}]
    validation_policy_update(model=model, actor=owner, required_file_patterns=[], pinned_baseline=None, rules=rules)
    request = _production_request(model, owner, metrics={"acc": 0.8})
    with pytest.raises(ValidationError, match="quality gate failed against v1"):
        transition_request_approve(transition_request=request, actor=reviewer)
    with pytest.raises(PermissionDenied):
        transition_request_override_quality(transition_request=request, actor=reviewer, reason="We accept the drop for latency.")
    with pytest.raises(ValidationError, match="Write the reason"):
        transition_request_override_quality(transition_request=request, actor=owner, reason="ok")
    transition_request_override_quality(transition_request=request, actor=owner, reason="We accept the drop for a 3x latency gain.")
    transition_request_approve(transition_request=request, actor=reviewer)
    request.refresh_from_db()
    assert request.status == "applied"
    assert AuditEntry.objects.filter(action="request.quality_override", after__reason__icontains="latency").exists()


def test_an_unsafe_version_never_reaches_staging_or_production(model, owner, reviewer):
    version = validated_version(model, owner, files={"model.pkl": pickle.dumps(RunsSystem(), protocol=2)})
    with pytest.raises(ValidationError, match="cannot leave draft"):
        transition_request_create(version=version, to_stage="staging", actor=owner, justification="please")
    version.refresh_from_db()
    assert version.stage == "draft"


def test_a_request_goes_stale_when_the_pointer_moves_between_approvals(model, owner, reviewer, second_approver):
    approval_policy_update(model=model, actor=owner, policies={"production": (2, None)})
    waiting = _production_request(model, owner)
    transition_request_approve(transition_request=waiting, actor=reviewer)
    assert not transition_request_is_stale(waiting)
    approval_policy_update(model=model, actor=owner, policies={"production": (1, None)})
    promote(validated_version(model, owner), requester=owner, approver=second_approver)  # the pointer moves
    approval_policy_update(model=model, actor=owner, policies={"production": (2, None)})
    assert transition_request_is_stale(waiting)
    transition_request_approve(transition_request=waiting, actor=second_approver)
    waiting.refresh_from_db()
    assert waiting.status == "pending", "the stale approval no longer counts"
    assert waiting.approvals.filter(invalidated_at__isnull=False).count() == 1
    transition_request_approve(transition_request=waiting, actor=reviewer)  # re-approval after staleness
    waiting.refresh_from_db()
    assert waiting.status == "applied"


def test_reject_needs_a_comment_and_withdraw_is_for_the_requester(model, owner, reviewer):
    request = _production_request(model, owner)
    with pytest.raises(ValidationError, match="Say why"):
        transition_request_reject(transition_request=request, actor=reviewer, comment=" ")
    with pytest.raises(PermissionDenied):
        transition_request_withdraw(transition_request=request, actor=reviewer)
    transition_request_reject(transition_request=request, actor=reviewer, comment="Metrics on the wrong split")
    request.refresh_from_db()
    assert request.status == "rejected"
    assert AuditEntry.objects.get(action="request.rejected").after["comment"] == "Metrics on the wrong split"
    with pytest.raises(ValidationError, match="already rejected"):
        transition_request_approve(transition_request=request, actor=reviewer)
    other = _production_request(model, owner)
    transition_request_withdraw(transition_request=other, actor=owner)
    other.refresh_from_db()
    assert other.status == "withdrawn"


def test_rollback_moves_the_pointer_back_without_a_new_approval(model, owner, reviewer):
    first, second = validated_version(model, owner), validated_version(model, owner)
    promote(first, requester=owner, approver=reviewer)
    promote(second, requester=owner, approver=reviewer)
    change = alias_rollback(model=model, alias=PRODUCTION_ALIAS, actor=reviewer, reason="latency spike")
    first.refresh_from_db(), second.refresh_from_db()
    assert (first.stage, second.stage) == ("production", "archived")
    assert change.kind == "rollback" and change.version == first and change.previous_version == second
    assert AuditEntry.objects.filter(action="production.rolled_back").exists()
    alias_rollback(model=model, alias=PRODUCTION_ALIAS, actor=owner, reason="fixed", to_version=second)
    second.refresh_from_db()
    assert second.stage == "production"


def test_rollback_refuses_versions_that_were_never_in_production(model, owner, reviewer, make_user):
    first = validated_version(model, owner)
    never = validated_version(model, owner)
    with pytest.raises(ValidationError, match="nothing to roll back to"):
        alias_rollback(model=model, alias=PRODUCTION_ALIAS, actor=owner, reason="x")
    promote(first, requester=owner, approver=reviewer)
    with pytest.raises(ValidationError, match="never in production"):
        alias_rollback(model=model, alias=PRODUCTION_ALIAS, actor=owner, reason="x", to_version=never)
    with pytest.raises(ValidationError, match="already in production"):
        alias_rollback(model=model, alias=PRODUCTION_ALIAS, actor=owner, reason="x", to_version=first)
    viewer = make_user("viewer")
    model_permission_grant(model=model, actor=owner, action=Action.VIEW, user=viewer)
    with pytest.raises(PermissionDenied):
        alias_rollback(model=model, alias=PRODUCTION_ALIAS, actor=viewer, reason="x")
    assert ProductionPointerChange.objects.count() == 1
    assert ModelVersion.objects.get(stage="production") == first


def test_every_stage_change_writes_its_events_in_the_same_transaction(model, owner, reviewer):
    from apps.events.models import Event

    first, second = validated_version(model, owner), validated_version(model, owner)
    promote(first, requester=owner, approver=reviewer)
    promote(second, requester=owner, approver=reviewer)
    alias_rollback(model=model, alias=PRODUCTION_ALIAS, actor=reviewer, reason="incident")
    events = [(e.type, e.payload) for e in Event.objects.filter(model=model).order_by("created_at")]
    production_moves = [(t, p["old_version"], p["new_version"]) for t, p in events if t.startswith("production.")]
    assert production_moves == [("production.changed", None, 1), ("production.changed", 1, 2), ("production.rolled_back", 2, 1)]
    stage_changes = [(p["version"], p["from_stage"], p["to_stage"]) for t, p in events if t == "version.stage_changed"]
    assert (2, "production", "archived") in stage_changes and (1, "archived", "production") in stage_changes
    with pytest.raises(ValidationError):
        alias_rollback(model=model, alias=PRODUCTION_ALIAS, actor=reviewer, reason="x", to_version=first)  # refused: nothing written
    assert Event.objects.filter(model=model).count() == len(events)


def test_a_rollback_never_returns_an_unsafe_version_to_production(model, owner, reviewer):
    old, new = register_version(model, owner), register_version(model, owner)
    promote(old, requester=owner, approver=reviewer)
    promote(new, requester=owner, approver=reviewer)
    # The old version's files are re-checked later and now flagged (e.g. a scanner update); simulate with a new job.
    unsafe = register_version(model, owner, files={"model.pkl": pickle.dumps(RunsSystem(), protocol=2)})
    validation_run(job_id=unsafe.validation_jobs.get().pk)
    ValidationJob.objects.filter(version=unsafe).update(version=old)

    with pytest.raises(ValidationError, match="return to production"):
        alias_rollback(model=model, alias=PRODUCTION_ALIAS, actor=owner, reason="incident", to_version=old)
    assert ModelVersion.objects.get(stage="production") == new
