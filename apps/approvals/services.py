"""Stage changes: the one function that decides them (`version_transition`, which applies them through
`apps.versions.services.version_stage_change`), the requests and approvals that gate them, and rollback.
Every path (dashboard, API, admin, seeding) goes through here; superusers included."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import TokenScope
from apps.audit import services as audit
from apps.models.models import RegisteredModel
from apps.models.permissions import Action, can, require, require_scope
from apps.validation.selectors import unsafe_finding_blocks
from apps.versions.lifecycle import Stage, checked_transition
from apps.versions.models import ModelVersion, ProductionPointerChange, StageTransition
from apps.versions.selectors import production_version
from apps.versions.services import version_stage_change

from .models import GATED_STAGES, Approval, ApprovalPolicy, Decision, Invalidation, RequestStatus, TransitionRequest
from .selectors import (
    approval_policy,
    production_gate_problems,
    quality_verdict,
    transition_request_policy,
    review_policy,
    stale_decisions,
)


def _live_approvals(transition_request: TransitionRequest, group) -> int:
    approvals = transition_request.approvals.filter(decision=Decision.APPROVE, invalidated_at__isnull=True)
    if group is not None:
        approvals = approvals.filter(approver__groups=group)
    return approvals.values("approver").distinct().count()


@transaction.atomic
def version_transition(
    *, version: ModelVersion, to_stage: str, actor, reason: str = "", transition_request: TransitionRequest | None = None, rollback: bool = False
) -> StageTransition:
    """The only way to change a version's stage, and where every gate is enforced; `version_stage_change` applies it.

    Locks the model row so concurrent promotions, approvals and rollbacks serialise. A move into staging, or into or
    out of production, reaches its stage only with a `request` holding the approvals `review_policy` asks for (a
    manager takes production down directly, audited). Production also needs passed validation and the quality gate,
    evaluated here, under the lock, against the production version (or pinned baseline) of this moment, unless a
    manager's override for that same baseline is on the request. A rollback to a version that passed production
    review before needs neither. Promoting archives the previous production version and records the pointer move.
    """
    model = RegisteredModel.objects.select_for_update().get(pk=version.model_id)
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if rollback:
        if not (can(actor, Action.APPROVE_TRANSITION, model) or can(actor, Action.MANAGE, model)):
            require(actor, Action.APPROVE_TRANSITION, model)
    else:
        require(actor, Action.APPROVE_TRANSITION if transition_request is not None else Action.REQUEST_TRANSITION, model)
    checked_transition(version.stage, to_stage, rollback=rollback)
    if (version.stage == Stage.DRAFT or to_stage == Stage.PRODUCTION) and unsafe_finding_blocks(version):
        raise ValidationError({"to_stage": ["Validation found code that would run when this version's files are unpickled; it cannot leave draft or return to production. Register a version saved without those objects (e.g. as safetensors)."]})
    if len(reason) > 5000:
        raise ValidationError({"reason": ["Keep the reason under 5000 characters."]})
    gate = None
    if not rollback:
        if transition_request is not None and transition_request.from_stage and transition_request.from_stage != version.stage:
            asked_from = transition_request.from_stage
            raise ValidationError({"to_stage": [f"v{version.number} is {version.stage} now, not {asked_from} as when this was requested; ask again."]})
        required, group = review_policy(model, from_stage=version.stage, to_stage=to_stage, actor=actor if transition_request is None else None)
        if required:
            if (
                transition_request is None
                or transition_request.version_id != version.pk
                or transition_request.to_stage != to_stage
                or transition_request.status != RequestStatus.PENDING
            ):
                leaving = " out of production" if version.stage == Stage.PRODUCTION else f" to {to_stage}"
                raise ValidationError({"to_stage": [f"Moving{leaving} needs {required} approval(s); request the transition for review."]})
            if _live_approvals(transition_request, group) < required:
                raise ValidationError({"to_stage": [f"Moving to {to_stage} needs {required} approval(s); the request has fewer."]})
        if to_stage == Stage.PRODUCTION:
            gate = quality_verdict(version)
            problems = production_gate_problems(version, transition_request, gate)
            if problems:
                raise ValidationError({"to_stage": problems})
    if transition_request is not None and gate is not None:
        transition_request.gate_at_decision = {"status": gate.status, "baseline": gate.baseline_number, "overridden": not gate.passed}
        transition_request.save(update_fields=["gate_at_decision"])

    authority = _takedown_authority(model, actor, transition_request) if version.stage == Stage.PRODUCTION and to_stage != Stage.PRODUCTION else ""
    return version_stage_change(model=model, version=version, to_stage=to_stage, actor=actor, reason=reason, rollback=rollback, takedown_authority=authority)


def _takedown_authority(model: RegisteredModel, actor, transition_request: TransitionRequest | None) -> str:
    if transition_request is not None:
        return f"request #{transition_request.pk}"
    return "manage" if can(actor, Action.MANAGE, model) else "policy: no approval required"


def _request_snapshot(transition_request: TransitionRequest) -> dict:
    return {"version": transition_request.version.number, "to_stage": transition_request.to_stage, "status": transition_request.status}


@transaction.atomic
def transition_request_create(*, version: ModelVersion, to_stage: str, actor, justification: str) -> TransitionRequest:
    """Ask to move a version. Moves that need no approval (and pass their gates) are applied at once; so is a
    manager's move out of production."""
    model = RegisteredModel.objects.select_for_update().get(pk=version.model_id)
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    require(actor, Action.REQUEST_TRANSITION, model)
    justification = justification.strip()
    if not justification:
        raise ValidationError({"justification": ["Say why this version should move; reviewers read it first."]})
    checked_transition(version.stage, to_stage)
    if TransitionRequest.objects.pending().filter(version=version, to_stage=to_stage).exists():
        raise ValidationError({"to_stage": [f"v{version.number} already has a pending request to move to {to_stage}."]})
    transition_request = TransitionRequest.objects.create(
        version=version, from_stage=version.stage, to_stage=to_stage, requested_by=actor, justification=justification
    )
    audit.record(actor=actor, obj=transition_request, action="request.created", after=_request_snapshot(transition_request), registered_model_id=model.pk)
    required, _ = review_policy(model, from_stage=version.stage, to_stage=to_stage, actor=actor)
    if required == 0:
        version_transition(version=version, to_stage=to_stage, actor=actor, reason=justification, transition_request=None)
        _decide(transition_request, RequestStatus.APPLIED, actor)
    return transition_request


def _decide(transition_request: TransitionRequest, status: str, actor, comment: str = "") -> None:
    before = _request_snapshot(transition_request)
    transition_request.status = status
    transition_request.decided_at = timezone.now()
    transition_request.save(update_fields=["status", "decided_at"])
    after = _request_snapshot(transition_request) | ({"comment": comment} if comment else {})
    if transition_request.gate_at_decision:
        after["quality_gate"] = transition_request.gate_at_decision
    audit.record(
        actor=actor, obj=transition_request, action=f"request.{status}", before=before, after=after,
        registered_model_id=transition_request.version.model_id,
    )


def _lock_pending(transition_request: TransitionRequest) -> tuple[RegisteredModel, TransitionRequest]:
    model = RegisteredModel.objects.select_for_update().get(pk=transition_request.version.model_id)
    transition_request = TransitionRequest.objects.select_for_update().select_related("version").get(pk=transition_request.pk)
    if transition_request.status != RequestStatus.PENDING:
        raise ValidationError(f"This request is already {transition_request.status}; nothing more can be decided on it.")
    return model, transition_request


def _invalidate_stale_approvals(transition_request: TransitionRequest, actor) -> int:
    count = stale_decisions(transition_request).update(invalidated_at=timezone.now(), invalidation=Invalidation.STALE)
    if count:
        audit.record(
            actor=actor, obj=transition_request, action="request.stale", after={"invalidated_approvals": count},
            registered_model_id=transition_request.version.model_id,
        )
    return count


@transaction.atomic
def transition_request_approve(*, transition_request: TransitionRequest, actor, comment: str = "") -> TransitionRequest:
    """Record an approval; the last required one applies the transition in the same transaction, and with it the
    production gates as they stand at this moment (a refused final approval leaves nothing behind)."""
    model, transition_request = _lock_pending(transition_request)
    require(actor, Action.APPROVE_TRANSITION, model)
    if transition_request.requested_by_id == actor.pk:
        raise PermissionDenied("You requested this transition; someone else must approve it.")
    required, group = transition_request_policy(transition_request)
    if group is not None and not actor.groups.filter(pk=group.pk).exists():
        raise PermissionDenied(f"Approvals for {transition_request.to_stage} must come from members of '{group.name}'.")
    _invalidate_stale_approvals(transition_request, actor)
    if transition_request.approvals.filter(approver=actor, invalidated_at__isnull=True).exists():
        raise ValidationError("You have already approved this request.")
    production = production_version(model)
    approval = Approval.objects.create(
        transition_request=transition_request, approver=actor, decision=Decision.APPROVE, comment=comment.strip(), production_version_at_approval=production
    )
    audit.record(
        actor=actor, obj=transition_request, action="request.approved_by",
        after={"approval": approval.pk, "comment": approval.comment}, registered_model_id=model.pk,
    )
    if _live_approvals(transition_request, group) >= required:
        version_transition(
            version=transition_request.version,
            to_stage=transition_request.to_stage,
            actor=actor,
            reason=transition_request.justification,
            transition_request=transition_request,
        )
        _decide(transition_request, RequestStatus.APPLIED, actor)
    return transition_request


@transaction.atomic
def transition_request_reject(*, transition_request: TransitionRequest, actor, comment: str) -> TransitionRequest:
    """Reject a pending request. A reviewer who approved it earlier changes their vote: the rejection replaces the
    approval (kept, marked replaced, audited), as on GitHub or Gerrit while a change is open."""
    model, transition_request = _lock_pending(transition_request)
    require(actor, Action.APPROVE_TRANSITION, model)
    if transition_request.requested_by_id == actor.pk:
        raise PermissionDenied("You requested this transition; withdraw it instead of rejecting it.")
    comment = comment.strip()
    if not comment:
        raise ValidationError({"comment": ["Say why you reject it, so the requester knows what to fix."]})
    earlier = transition_request.approvals.filter(approver=actor, invalidated_at__isnull=True).first()
    if earlier is not None:
        earlier.invalidated_at, earlier.invalidation = timezone.now(), Invalidation.REPLACED
        earlier.save(update_fields=["invalidated_at", "invalidation"])
        audit.record(
            actor=actor, obj=transition_request, action="request.decision_changed", registered_model_id=model.pk,
            before={"approval": earlier.pk, "decision": earlier.decision, "comment": earlier.comment}, after={"decision": Decision.REJECT, "comment": comment},
        )
    Approval.objects.create(transition_request=transition_request, approver=actor, decision=Decision.REJECT, comment=comment)
    _decide(transition_request, RequestStatus.REJECTED, actor, comment=comment)
    return transition_request


@transaction.atomic
def transition_request_withdraw(*, transition_request: TransitionRequest, actor) -> TransitionRequest:
    model, transition_request = _lock_pending(transition_request)
    require(actor, Action.VIEW, model)
    require_scope(actor, TokenScope.FULL, "withdrawing transition requests")
    if transition_request.requested_by_id != actor.pk:
        raise PermissionDenied("Only the requester can withdraw a request.")
    _decide(transition_request, RequestStatus.WITHDRAWN, actor)
    return transition_request


@transaction.atomic
def transition_request_override_quality(*, transition_request: TransitionRequest, actor, reason: str) -> TransitionRequest:
    """A manager lets a production request past the quality gate failing now, with a written reason (audited).

    The override holds for the baseline it was given against; if production moves, the gate is judged again."""
    model, transition_request = _lock_pending(transition_request)
    require(actor, Action.MANAGE, model)
    if transition_request.to_stage != Stage.PRODUCTION:
        raise ValidationError("Only production requests pass the quality gate.")
    if len(reason.strip()) < 10:
        raise ValidationError({"reason": ["Write the reason for overriding the quality gate (at least a sentence)."]})
    verdict = quality_verdict(transition_request.version)
    if verdict.passed:
        against = f" against v{verdict.baseline.number}" if verdict.baseline else ""
        raise ValidationError(f"The quality gate passes{against}; there is nothing to override.")
    transition_request.override_reason, transition_request.override_by, transition_request.override_baseline = reason.strip(), actor, verdict.baseline
    transition_request.save(update_fields=["override_reason", "override_by", "override_baseline"])
    audit.record(
        actor=actor, obj=transition_request, action="request.quality_override", registered_model_id=model.pk,
        after={"reason": transition_request.override_reason, "baseline": verdict.baseline_number, "failed": verdict.failures()},
    )
    return transition_request


@transaction.atomic
def production_rollback(*, model: RegisteredModel, actor, reason: str, to_version: ModelVersion | None = None) -> ProductionPointerChange:
    """Move the production pointer back: no re-upload, no new approval for a version that passed production review."""
    model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
    if not (can(actor, Action.APPROVE_TRANSITION, model) or can(actor, Action.MANAGE, model)):
        require(actor, Action.APPROVE_TRANSITION, model)
    if not reason.strip():
        raise ValidationError({"reason": ["Say why you roll back; it is kept in the pointer history."]})
    current = production_version(model)
    was_production = ProductionPointerChange.objects.filter(model=model, version__isnull=False)
    if to_version is None:
        earlier = was_production.exclude(version=current).order_by("-changed_at", "-id").first()
        if earlier is None:
            raise ValidationError("No earlier version was ever in production; there is nothing to roll back to.")
        to_version = earlier.version
    elif to_version.model_id != model.pk or not was_production.filter(version=to_version).exists():
        raise ValidationError({"to_version": [f"v{to_version.number} was never in production; only those can be rolled back to."]})
    elif current is not None and to_version.pk == current.pk:
        raise ValidationError({"to_version": [f"v{to_version.number} is already in production."]})
    version_transition(version=to_version, to_stage=Stage.PRODUCTION, actor=actor, reason=reason.strip(), rollback=True)
    change = ProductionPointerChange.objects.filter(model=model).order_by("-changed_at", "-id").first()
    audit.record(
        actor=actor, obj=model, action="production.rolled_back",
        before={"version": current.number if current else None}, after={"version": to_version.number, "reason": reason.strip()}, registered_model_id=model.pk,
    )
    return change


@transaction.atomic
def approval_policy_update(*, model: RegisteredModel, actor, policies: dict[str, tuple[int, object]]) -> None:
    """Set, per gated stage, the number of distinct approvals required and the group approvers must belong to."""
    require(actor, Action.MANAGE, model)
    before = {stage: list(approval_policy(model, stage)) for stage in GATED_STAGES}
    for stage, (required, group) in policies.items():
        if stage not in GATED_STAGES:
            raise ValidationError(f"{stage} has no approval policy.")
        ApprovalPolicy.objects.update_or_create(model=model, target_stage=stage, defaults={"required_approvals": required, "approver_group": group})
    audit.record(
        actor=actor, obj=model, action="approval_policy.updated",
        before={s: [r, g.name if g else None] for s, (r, g) in before.items()},
        after={s: [r, g.name if g else None] for s, (r, g) in policies.items()}, registered_model_id=model.pk,
    )
