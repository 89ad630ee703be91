"""Aliases as governed pointers: free aliases move at once, governed ones only through request -> approve -> apply,
with the gates judged at the decisive approval; history per alias, rollback per alias, drift against a followed alias."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from apps.approvals.services import (
    ApprovalRequired,
    alias_delete,
    alias_policy_update,
    alias_rollback,
    alias_set,
    transition_request_approve,
    transition_request_create,
)
from apps.audit.models import AuditEntry
from apps.events.models import Event, EventType
from apps.models.permissions import Action
from apps.models.services import model_permission_grant
from apps.validation.models import ValidationJob
from apps.validation.services import validation_run
from apps.versions.models import AliasChange, ModelAlias
from apps.versions.selectors import alias_at, alias_history, deployments_with_drift, version_at_alias
from apps.versions.services import deployment_report
from tests.factories import promote, register_version, validated_version

pytestmark = pytest.mark.django_db


def test_a_free_alias_moves_at_once_audited_and_evented(model, owner):
    v1, v2 = register_version(model, owner), register_version(model, owner)
    alias_set(model=model, alias="champion", version=v1, actor=owner, reason="first")
    alias_set(model=model, alias="champion", version=v2, actor=owner)
    alias_set(model=model, alias="canary", version=v2, actor=owner)
    assert version_at_alias(model, "champion") == v2 and version_at_alias(model, "canary") == v2  # one version, several aliases
    assert [(c.previous_version and c.previous_version.number, c.version.number) for c in alias_history(model, "champion")] == [(1, 2), (None, 1)]
    assert AuditEntry.objects.filter(action="alias.moved").count() == 3
    event = Event.objects.filter(type=EventType.ALIAS_CHANGED).order_by("created_at").last()
    assert event.payload == {"alias": "canary", "old_version": None, "new_version": 2, "reason": "", "rollback": False}


def test_alias_names_are_canonical_and_stage_names_reserved(model, owner, version):
    for bad in ("staging", "Draft", "latest", "v3", "a/b", "PRODUCTION", ""):
        with pytest.raises(ValidationError):
            alias_set(model=model, alias=bad, version=version, actor=owner)
    alias_set(model=model, alias=" eu-prod ", version=version, actor=owner)
    assert ModelAlias.objects.get().name == "eu-prod"


def test_a_viewer_cannot_set_an_alias(model, reviewer, make_user, owner, version):
    viewer = make_user("viewer")
    model_permission_grant(model=model, actor=owner, action=Action.VIEW, user=viewer)
    with pytest.raises(PermissionDenied):
        alias_set(model=model, alias="champion", version=version, actor=viewer)


def test_a_governed_alias_is_refused_without_approval_and_applied_at_the_decisive_one(model, owner, reviewer):
    alias_policy_update(model=model, alias="champion", actor=owner, required_approvals=1, gates=True)
    version = validated_version(model, owner)
    with pytest.raises(ApprovalRequired) as refused:
        alias_set(model=model, alias="champion", version=version, actor=owner)
    assert "request the transition for review" in str(refused.value) and refused.value.request_path.endswith("/versions/1/transitions/")
    assert version_at_alias(model, "champion") is None
    transition_request = transition_request_create(version=version, alias="champion", actor=owner, justification="best offline")
    assert transition_request.status == "pending" and transition_request.target == "@champion"
    with pytest.raises(PermissionDenied, match="someone else"):
        transition_request_approve(transition_request=transition_request, actor=owner)
    transition_request_approve(transition_request=transition_request, actor=reviewer)
    transition_request.refresh_from_db()
    assert transition_request.status == "applied" and transition_request.gate_at_decision["status"] == "passed"
    assert version_at_alias(model, "champion") == version
    assert AuditEntry.objects.filter(action="request.applied").exists()


def test_the_gates_of_a_governed_alias_are_judged_at_the_decisive_approval(model, owner, reviewer):
    alias_policy_update(model=model, alias="champion", actor=owner, required_approvals=1, gates=True)
    version = register_version(model, owner)  # validation not run yet
    transition_request = transition_request_create(version=version, alias="champion", actor=owner, justification="go")
    with pytest.raises(ValidationError, match="Validation has not finished"):
        transition_request_approve(transition_request=transition_request, actor=reviewer)
    transition_request.refresh_from_db()
    assert transition_request.status == "pending" and not transition_request.approvals.exists()  # nothing left behind
    validation_run(job_id=ValidationJob.objects.get(version=version).pk)
    transition_request_approve(transition_request=transition_request, actor=reviewer)
    assert version_at_alias(model, "champion").pk == version.pk


def test_an_alias_without_gates_needs_only_its_approvals(model, owner, reviewer):
    alias_policy_update(model=model, alias="canary", actor=owner, required_approvals=1)
    version = register_version(model, owner)  # never validated
    transition_request = transition_request_create(version=version, alias="canary", actor=owner, justification="try")
    transition_request_approve(transition_request=transition_request, actor=reviewer)
    assert version_at_alias(model, "canary").pk == version.pk


def test_the_production_alias_is_the_production_stage(model, owner, reviewer):
    version = validated_version(model, owner)
    transition_request_create(version=version, to_stage="staging", actor=owner, justification="ready")
    with pytest.raises(ApprovalRequired, match='"to_stage": "production"'):
        alias_set(model=model, alias="production", version=version, actor=owner)
    transition_request = transition_request_create(version=version, alias="production", actor=owner, justification="ship")
    assert transition_request.to_stage == "production" and transition_request.alias == ""
    transition_request_approve(transition_request=transition_request, actor=reviewer)
    assert version_at_alias(model, "production").pk == version.pk


def test_history_at_an_instant_and_rollback_per_alias(model, owner, reviewer):
    v1, v2 = register_version(model, owner), register_version(model, owner)
    alias_set(model=model, alias="champion", version=v1, actor=owner)
    AliasChange.objects.update(changed_at=AliasChange.objects.get().changed_at - timedelta(hours=2))
    middle = AliasChange.objects.get().changed_at + timedelta(hours=1)
    alias_set(model=model, alias="champion", version=v2, actor=owner)
    assert alias_at(model, "champion", middle) == v1 and alias_at(model, "champion", middle - timedelta(hours=2)) is None
    with pytest.raises(PermissionDenied):
        alias_rollback(model=model, alias="champion", actor=register_viewer(model, owner), reason="bad")
    with pytest.raises(ValidationError, match="reason"):
        alias_rollback(model=model, alias="champion", actor=reviewer, reason=" ")
    change = alias_rollback(model=model, alias="champion", actor=reviewer, reason="v2 regressed")
    assert change.kind == "rollback" and version_at_alias(model, "champion") == v1
    assert AuditEntry.objects.filter(action="alias.rolled_back").exists()
    with pytest.raises(ValidationError, match="v1 is already at @champion"):
        alias_rollback(model=model, alias="champion", actor=reviewer, reason="again", to_version=v1)


def test_a_governed_alias_rolls_back_without_a_new_approval(model, owner, reviewer):
    alias_policy_update(model=model, alias="champion", actor=owner, required_approvals=1)
    v1, v2 = register_version(model, owner), register_version(model, owner)
    for version in (v1, v2):
        transition_request_approve(
            transition_request=transition_request_create(version=version, alias="champion", actor=owner, justification="go"), actor=reviewer
        )
    alias_rollback(model=model, alias="champion", actor=reviewer, reason="v2 regressed")
    assert version_at_alias(model, "champion") == v1


def test_deleting_a_governed_alias_is_for_managers(model, owner, reviewer, version):
    alias_set(model=model, alias="champion", version=version, actor=owner)
    alias_policy_update(model=model, alias="champion", actor=owner, required_approvals=1)
    model_permission_grant(model=model, actor=owner, action=Action.REQUEST_TRANSITION, user=reviewer)
    with pytest.raises(PermissionDenied, match="only managers"):
        alias_delete(model=model, alias="champion", actor=reviewer)
    alias_delete(model=model, alias="champion", actor=owner, reason="retired")
    assert version_at_alias(model, "champion") is None and alias_history(model, "champion")[0].kind == "retirement"
    assert Event.objects.filter(type=EventType.ALIAS_CHANGED, payload__new_version=None).exists()


def test_drift_is_judged_against_the_alias_a_deployment_follows(model, owner, reviewer):
    v1, v2 = validated_version(model, owner), register_version(model, owner)
    promote(v1, requester=owner, approver=reviewer)
    alias_set(model=model, alias="canary", version=v2, actor=owner)
    deployment_report(model=model, environment="prod-eu", version=v1, actor=owner)
    deployment_report(model=model, environment="canary-eu", version=v1, actor=owner, follows="canary")
    rows = {row["deployment"].environment: row for row in deployments_with_drift(model, v1, None, list(ModelAlias.objects.all()))}
    assert not rows["prod-eu"]["drifting"]
    assert rows["canary-eu"]["drifting"] and rows["canary-eu"]["target"] == v2 and rows["canary-eu"]["behind_for"] is not None


def register_viewer(model, owner):
    from django.contrib.auth import get_user_model

    viewer = get_user_model().objects.create_user(username="viewer2", password="x")
    model_permission_grant(model=model, actor=owner, action=Action.VIEW, user=viewer)
    return viewer
