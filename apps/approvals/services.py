"""Stage changes: the one function that decides them (`version_transition`, which applies them through
`apps.versions.services.version_stage_change`), the requests and approvals that gate them, and rollback.
Every path (dashboard, API, admin, seeding) goes through here; superusers included."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import TokenScope
from apps.audit import services as audit
from apps.models.models import RegisteredModel
from apps.models.permissions import Action, can, require, require_rollback, require_scope
from apps.signing.services import manifest_sign
from apps.validation.selectors import unsafe_finding_blocks
from apps.versions.aliases import PRODUCTION_ALIAS, checked_alias_name
from apps.versions.lifecycle import Stage, checked_transition
from apps.versions.models import AliasChange, ModelVersion, ProductionPointerChange, StageTransition
from apps.versions.selectors import alias_history, alias_rollback_candidates, production_version, version_at_alias
from apps.versions.services import alias_pointer_change, version_stage_change

from . import notices
from .models import GATED_STAGES, AliasPolicy, Approval, ApprovalPolicy, Decision, Invalidation, RequestStatus, TransitionRequest
from .selectors import (
    AliasRules,
    alias_policy,
    approval_policy,
    production_gate_problems,
    quality_verdict,
    transition_request_is_gated,
    transition_request_policy,
    review_policy,
    stale_decisions,
)


def _live_approvals(transition_request: TransitionRequest, group) -> int:
    approvals = transition_request.approvals.filter(decision=Decision.APPROVE, invalidated_at__isnull=True)
    if group is not None:
        approvals = approvals.filter(approver__groups=group)
    return approvals.values("approver").distinct().count()


class ApprovalRequired(ValidationError):
    """A move that needs approvals, tried without a request holding them. Names the request to open: `target` is the
    stage or `@alias`, `request_path` the API path that opens it (what the message says too)."""

    def __init__(self, message: str, *, field: str, model: RegisteredModel, version: ModelVersion, target: str, required: int):
        super().__init__({field: [message]})
        self.model_name, self.version_number, self.target, self.required = model.name, version.number, target, required
        self.request_path = f"/api/v1/models/{model.name}/versions/{version.number}/transitions/"


@transaction.atomic
def version_transition(
    *,
    version: ModelVersion,
    to_stage: str = "",
    actor,
    reason: str = "",
    transition_request: TransitionRequest | None = None,
    rollback: bool = False,
    alias: str = "",
    remove: bool = False,
) -> StageTransition | AliasChange:
    """The only way to move a pointer: a version's stage (and with it the production pointer), or a free alias
    (`alias`, with `remove` to delete it). Every gate is enforced here; `version_stage_change` and
    `alias_pointer_change` apply what it decides.

    Locks the model row so concurrent promotions, alias moves, approvals and rollbacks serialise. A move into
    staging, or into or out of production, or of a governed alias, happens only with a `transition_request` holding
    the approvals its policy asks for (`review_policy`, `alias_policy`); a manager takes production down, or deletes a
    governed alias, directly (audited). Production, and an alias whose policy has gates, also needs passed
    validation and the quality gate, evaluated here, under the lock, against the production version (or pinned
    baseline) of this moment, unless a manager's override for that same baseline is on the request. A rollback to a
    version that held the pointer before needs no approval. The `production` alias is the production stage.
    """
    model = RegisteredModel.objects.select_for_update().get(pk=version.model_id)
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if alias == PRODUCTION_ALIAS:
        to_stage, alias = (Stage.ARCHIVED if remove else Stage.PRODUCTION), ""
    if rollback:
        require_rollback(actor, model)
    else:
        require(actor, Action.APPROVE_TRANSITION if transition_request is not None else Action.REQUEST_TRANSITION, model)
    rules = alias_policy(model, alias) if alias else None
    if alias:
        gated = rules.gates and not remove
        unsafe_blocks = gated
    else:
        checked_transition(version.stage, to_stage, rollback=rollback)
        gated = to_stage == Stage.PRODUCTION
        unsafe_blocks = version.stage == Stage.DRAFT or to_stage == Stage.PRODUCTION
    if unsafe_blocks and unsafe_finding_blocks(version):
        where = f"move @{alias} (its policy applies the gates)" if alias else "return to production"
        raise ValidationError({"alias" if alias else "to_stage": [
            f"Validation found code that would run when this version's files are unpickled; it cannot leave draft or {where}. "
            "Register a version saved without those objects (e.g. as safetensors)."
        ]})
    if len(reason) > 5000:
        raise ValidationError({"reason": ["Keep the reason under 5000 characters."]})
    gate = None
    if not rollback:
        if alias:
            required, group = rules.required_approvals, rules.approver_group
            if remove and required:
                if not can(actor, Action.MANAGE, model):
                    raise PermissionDenied(f"@{alias} is governed ({required} approval(s) to move it); only managers of '{model.name}' may delete it.")
                required = 0
            matches = transition_request is not None and transition_request.alias == alias
            field, target = "alias", f"@{alias}"
            asking = f"Moving @{alias} to v{version.number} needs {required} approval(s)"
            how = f'{{"alias": "{alias}", "comment": "why"}}'
        else:
            if transition_request is not None and transition_request.from_stage and transition_request.from_stage != version.stage:
                asked_from = transition_request.from_stage
                raise ValidationError({"to_stage": [f"v{version.number} is {version.stage} now, not {asked_from} as when this was requested; ask again."]})
            required, group = review_policy(model, from_stage=version.stage, to_stage=to_stage, actor=actor if transition_request is None else None)
            matches = transition_request is not None and not transition_request.alias and transition_request.to_stage == to_stage
            field, target = "to_stage", to_stage
            leaving = " out of production" if version.stage == Stage.PRODUCTION else f" to {to_stage}"
            asking = f"Moving{leaving} needs {required} approval(s)"
            how = f'{{"to_stage": "{to_stage}", "comment": "why"}}'
        if required:
            if not matches or transition_request.version_id != version.pk or transition_request.status != RequestStatus.PENDING:
                raise ApprovalRequired(
                    f"{asking}; request the transition for review: POST /api/v1/models/{model.name}/versions/{version.number}/transitions/ "
                    f"with {how}, or 'Request' on the version page. Someone else approves it.",
                    field=field, model=model, version=version, target=target, required=required,
                )
            if _live_approvals(transition_request, group) < required:
                raise ValidationError({field: [f"Moving to {target} needs {required} approval(s); the request has fewer."]})
        if gated:
            gate = quality_verdict(version)
            problems = production_gate_problems(version, transition_request, gate)
            if problems:
                raise ValidationError({field: problems})
    if transition_request is not None and gate is not None:
        transition_request.gate_at_decision = {"status": gate.status, "baseline": gate.baseline_number, "overridden": not gate.passed}
        transition_request.save(update_fields=["gate_at_decision"])

    if alias:
        change = alias_pointer_change(model=model, alias=alias, version=None if remove else version, actor=actor, reason=reason, rollback=rollback)
        if rules.governed and not remove:
            _sign_entry(version, f"@{alias}", actor, transition_request, rollback, alias=alias)
        return change
    authority = _takedown_authority(model, actor, transition_request) if version.stage == Stage.PRODUCTION and to_stage != Stage.PRODUCTION else ""
    production_moves = Stage.PRODUCTION in (version.stage, to_stage)
    previous = production_version(model) if production_moves else None
    transition = version_stage_change(
        model=model, version=version, to_stage=to_stage, actor=actor, reason=reason, rollback=rollback, takedown_authority=authority
    )
    if to_stage == Stage.PRODUCTION:
        _sign_entry(version, Stage.PRODUCTION.value, actor, transition_request, rollback)
    if production_moves:
        notices.approvals_went_stale(model, previous.pk if previous else None, actor, decided=transition_request)
    return transition


def _sign_entry(version: ModelVersion, pointer: str, actor, transition_request: TransitionRequest | None, rollback: bool, alias: str = "") -> None:
    """Sign the manifest of a version that just entered production or a governed alias, with the approvals that let it
    in: the request's; for a move that needed none, the request being applied at once (the one pending request for
    this version and target); for a rollback, those of the request that first took it there."""
    if transition_request is None:
        asked = TransitionRequest.objects.filter(version=version, status=RequestStatus.APPLIED if rollback else RequestStatus.PENDING)
        asked = asked.filter(alias=alias) if alias else asked.filter(alias="", to_stage=Stage.PRODUCTION)
        transition_request = asked.order_by("-decided_at" if rollback else "-created_at", "-id").first()
    approvals, asked = [], None
    if transition_request is not None:
        live = transition_request.approvals.filter(decision=Decision.APPROVE, invalidated_at__isnull=True).select_related("approver")
        approvals = [
            {"approver": approval.approver.get_username(), "approved_at": approval.created_at.isoformat().replace("+00:00", "Z"), "comment": approval.comment}
            for approval in live
        ]
        asked = {"id": transition_request.pk, "requested_by": transition_request.requested_by.get_username(), "justification": transition_request.justification}
    manifest_sign(version=version, pointer=pointer, actor=actor, approvals=approvals, transition_request=asked, rollback=rollback)


def _takedown_authority(model: RegisteredModel, actor, transition_request: TransitionRequest | None) -> str:
    if transition_request is not None:
        return f"request #{transition_request.pk}"
    return "manage" if can(actor, Action.MANAGE, model) else "policy: no approval required"


def _request_snapshot(transition_request: TransitionRequest) -> dict:
    target = {"alias": transition_request.alias} if transition_request.alias else {"to_stage": transition_request.to_stage}
    return {"version": transition_request.version.number, **target, "status": transition_request.status}


@transaction.atomic
def transition_request_create(*, version: ModelVersion, to_stage: str = "", actor, justification: str, alias: str = "") -> TransitionRequest:
    """Ask to move a version to a stage, or to point a free alias at it (`alias`; `production` is the stage).

    Moves that need no approval (and pass their gates) are applied at once; so is a manager's move out of production."""
    model = RegisteredModel.objects.select_for_update().get(pk=version.model_id)
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    require(actor, Action.REQUEST_TRANSITION, model)
    justification = justification.strip()
    if not justification:
        raise ValidationError({"justification": ["Say why this version should move; reviewers read it first."]})
    alias = checked_alias_name(alias) if alias else ""
    if alias == PRODUCTION_ALIAS:
        to_stage, alias = Stage.PRODUCTION, ""
    if alias:
        current = version_at_alias(model, alias)
        if current is not None and current.pk == version.pk:
            raise ValidationError({"alias": [f"@{alias} already points at v{version.number}."]})
        if TransitionRequest.objects.pending().filter(version=version, alias=alias).exists():
            raise ValidationError({"alias": [f"v{version.number} already has a pending request for @{alias}."]})
        required = alias_policy(model, alias).required_approvals
    else:
        checked_transition(version.stage, to_stage)
        if TransitionRequest.objects.pending().filter(version=version, to_stage=to_stage).exists():
            raise ValidationError({"to_stage": [f"v{version.number} already has a pending request to move to {to_stage}."]})
        required, _ = review_policy(model, from_stage=version.stage, to_stage=to_stage, actor=actor)
    transition_request = TransitionRequest.objects.create(
        version=version, from_stage=version.stage, to_stage=to_stage, alias=alias, requested_by=actor, justification=justification
    )
    audit.record(actor=actor, obj=transition_request, action="request.created", after=_request_snapshot(transition_request), registered_model_id=model.pk)
    if required == 0:
        version_transition(version=version, to_stage=to_stage, alias=alias, actor=actor, reason=justification, transition_request=None)
        _decide(transition_request, RequestStatus.APPLIED, actor)
    else:
        notices.review_requested(transition_request, actor)
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
        raise PermissionDenied(f"Approvals for {transition_request.target} must come from members of '{group.name}'.")
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
            alias=transition_request.alias,
            actor=actor,
            reason=transition_request.justification,
            transition_request=transition_request,
        )
        _decide(transition_request, RequestStatus.APPLIED, actor)
    notices.request_approved(transition_request, actor, approval.comment)
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
    notices.request_rejected(transition_request, actor, comment)
    return transition_request


@transaction.atomic
def transition_request_withdraw(*, transition_request: TransitionRequest, actor) -> TransitionRequest:
    model, transition_request = _lock_pending(transition_request)
    require(actor, Action.VIEW, model)
    require_scope(actor, TokenScope.FULL, "withdrawing transition requests")
    if transition_request.requested_by_id != actor.pk:
        raise PermissionDenied("Only the requester can withdraw a request.")
    _decide(transition_request, RequestStatus.WITHDRAWN, actor)
    notices.request_withdrawn(transition_request, actor)
    return transition_request


@transaction.atomic
def transition_request_override_quality(*, transition_request: TransitionRequest, actor, reason: str) -> TransitionRequest:
    """A manager lets a production request past the quality gate failing now, with a written reason (audited).

    The override holds for the baseline it was given against; if production moves, the gate is judged again."""
    model, transition_request = _lock_pending(transition_request)
    require(actor, Action.MANAGE, model)
    if not transition_request_is_gated(transition_request):
        raise ValidationError("Only production requests, and requests for aliases whose policy has gates, pass the quality gate.")
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


# -- aliases -----------------------------------------------------------------------------------------------------------


@transaction.atomic
def alias_set(*, model: RegisteredModel, alias: str, version: ModelVersion, actor, reason: str = "") -> StageTransition | AliasChange:
    """Point an alias at a version now, through `version_transition`: an ungoverned free alias moves at once (audited,
    evented); a governed one (and `production`) raises `ApprovalRequired`, naming the request to open
    (`transition_request_create(..., alias=...)`), which applies the move at its decisive approval."""
    alias = checked_alias_name(alias)
    if version.model_id != model.pk:
        raise ValidationError({"version": [f"v{version.number} is not a version of '{model.name}'."]})
    if alias == PRODUCTION_ALIAS:
        return version_transition(version=version, to_stage=Stage.PRODUCTION, actor=actor, reason=reason.strip())
    return version_transition(version=version, alias=alias, actor=actor, reason=reason.strip())


@transaction.atomic
def alias_delete(*, model: RegisteredModel, alias: str, actor, reason: str = "") -> StageTransition | AliasChange:
    """Remove an alias through `version_transition`: a free alias anyone who may request moves deletes when it is
    ungoverned, a manager when it is governed; `production` is taken down (archived) under production's rules."""
    alias = checked_alias_name(alias)
    current = version_at_alias(model, alias)
    if current is None:
        raise ValidationError({"alias": [f"Model '{model.name}' has no alias '{alias}'."]})
    return version_transition(version=current, alias=alias, remove=True, actor=actor, reason=reason.strip())


@transaction.atomic
def alias_rollback(*, model: RegisteredModel, alias: str, actor, reason: str, to_version: ModelVersion | None = None) -> ProductionPointerChange | AliasChange:
    """Point an alias (`production`, the built-in one, included) back at a version it pointed at before (the previous
    one by default): no re-upload, no new approval; approvers and managers may. Returns the pointer change it wrote."""
    alias = checked_alias_name(alias)
    model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
    require_rollback(actor, model)
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": ["Say why you roll back; it is kept in the pointer history."]})
    at = "in production" if alias == PRODUCTION_ALIAS else f"at @{alias}"
    current = version_at_alias(model, alias)
    candidates = alias_rollback_candidates(model, alias, current)
    if to_version is None:
        if not candidates:
            raise ValidationError(f"No earlier version was ever {at}; there is nothing to roll back to.")
        to_version = ModelVersion.objects.get(model=model, number=candidates[0])
    elif current is not None and to_version.pk == current.pk:
        raise ValidationError({"to_version": [f"v{to_version.number} is already {at}."]})
    elif to_version.model_id != model.pk or to_version.number not in candidates:
        raise ValidationError({"to_version": [f"v{to_version.number} was never {at}; only those versions can be rolled back to."]})
    if alias == PRODUCTION_ALIAS:
        version_transition(version=to_version, to_stage=Stage.PRODUCTION, actor=actor, reason=reason, rollback=True)
        change = alias_history(model, alias).order_by("-changed_at", "-id").first()
        audit.record(
            actor=actor, obj=model, action="production.rolled_back", registered_model_id=model.pk,
            before={"version": current.number if current else None}, after={"version": to_version.number, "reason": reason},
        )
    else:
        change = version_transition(version=to_version, alias=alias, actor=actor, reason=reason, rollback=True)
    notices.rolled_back(model, actor, alias=alias, previous=current, to_version=to_version, reason=reason)
    return change


@transaction.atomic
def alias_policy_update(
    *, model: RegisteredModel, alias: str, actor, required_approvals: int, approver_group=None, gates: bool = False
) -> AliasRules:
    """Set how an alias is governed (managers). For `production` this is production's approval policy; its gates
    always apply. A free alias's policy may be set before the alias first points anywhere."""
    require(actor, Action.MANAGE, model)
    alias = checked_alias_name(alias)
    if not 0 <= required_approvals <= 10:
        raise ValidationError({"required_approvals": ["Ask for 0 to 10 approvals."]})
    if alias == PRODUCTION_ALIAS:
        if not gates:
            raise ValidationError({"gates": ["Production's gates always apply; only its approvals and approver group can change."]})
        approval_policy_update(model=model, actor=actor, policies={Stage.PRODUCTION: (required_approvals, approver_group)})
        return alias_policy(model, alias)
    before = alias_policy(model, alias).as_dict()
    AliasPolicy.objects.update_or_create(
        model=model, alias=alias, defaults={"required_approvals": required_approvals, "approver_group": approver_group, "gates": gates}
    )
    after = alias_policy(model, alias)
    audit.record(actor=actor, obj=model, action="alias_policy.updated", before=before, after=after.as_dict(), registered_model_id=model.pk)
    return after


@transaction.atomic
def versions_archive(*, versions: list[ModelVersion], actor, justification: str) -> list[TransitionRequest]:
    """Archive several versions as one decision, each through `transition_request_create` (so a move that needs review,
    like taking production down, opens a request and the others apply at once). All or nothing: if any version
    cannot move, none does, and the error names each one."""
    if not versions:
        raise ValidationError({"v": ["Tick at least one version to archive."]})
    created, errors = [], []
    for version in versions:
        try:
            created.append(transition_request_create(version=version, to_stage=Stage.ARCHIVED, actor=actor, justification=justification))
        except ValidationError as exc:
            errors.append(f"v{version.number}: {' '.join(exc.messages)}")
    if errors:
        raise ValidationError(errors)
    return created
