"""Stage changes: the one function that decides them (`version_transition`, which applies them through
`apps.versions.services.version_stage_change`), the requests and approvals that gate them, and rollback.
Every path (dashboard, API, admin, seeding) goes through here; superusers included."""

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import TokenScope
from apps.audit import services as audit
from apps.models.models import RegisteredModel
from apps.models.permissions import Action, can, require, require_scope
from apps.validation.models import JobStatus, ValidationJob, Verdict
from apps.validation.services import _policy as validation_policy, quality_gate, unsafe_finding_blocks
from apps.versions.lifecycle import Stage, checked_transition
from apps.versions.models import ModelVersion, ProductionPointerChange, StageTransition
from apps.versions.services import version_stage_change

from .models import (
    DEFAULT_REQUIRED_APPROVALS,
    GATED_STAGES,
    Approval,
    ApprovalPolicy,
    Decision,
    Invalidation,
    RequestStatus,
    TransitionRequest,
)


def reviewed_stage(from_stage: str, to_stage: str) -> str | None:
    """Whose approval policy governs a move: production's for any move into *or out of* production, staging's for a
    move into staging, none otherwise. Taking production down is a production change."""
    if Stage.PRODUCTION in (from_stage, to_stage):
        return Stage.PRODUCTION
    return Stage.STAGING if to_stage == Stage.STAGING else None


def approval_policy(model: RegisteredModel, stage: str) -> tuple[int, object]:
    """(required distinct approvals, approver group or None) for moving a version of `model` into `stage`."""
    if stage not in GATED_STAGES:
        return 0, None
    policy = ApprovalPolicy.objects.filter(model=model, target_stage=stage).select_related("approver_group").first()
    if policy is None:
        return DEFAULT_REQUIRED_APPROVALS[stage], None
    return policy.required_approvals, policy.approver_group


def review_policy(model: RegisteredModel, *, from_stage: str, to_stage: str, actor=None) -> tuple[int, object]:
    """(required approvals, approver group) for one move. A move out of production is reviewed under production's
    policy, like a move into it; a manager of the model may take production down without review (audited)."""
    stage = reviewed_stage(from_stage, to_stage)
    if stage is None:
        return 0, None
    if from_stage == Stage.PRODUCTION and to_stage != Stage.PRODUCTION and actor is not None and can(actor, Action.MANAGE, model):
        return 0, None
    return approval_policy(model, stage)


def request_policy(request: TransitionRequest) -> tuple[int, object]:
    """The approvals a request needs, fixed by the stage its version was in when it was requested."""
    return review_policy(request.version.model, from_stage=request.from_stage or request.version.stage, to_stage=request.to_stage)


@dataclass(frozen=True)
class QualityVerdict:
    """The quality gate as it stands now, beside the verdict validation recorded."""

    status: str
    baseline: ModelVersion | None
    pinned: bool
    rules: list[dict]
    validated_status: str
    validated_baseline: ModelVersion | None

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def baseline_moved(self) -> bool:
        return self.validated_status != "" and _pk(self.baseline) != _pk(self.validated_baseline)

    def failures(self) -> str:
        return "; ".join(f"{r['metric']}: {r['reason']}" for r in self.rules if r["verdict"] == "fail")

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "baseline": self.baseline.number if self.baseline else None,
            "baseline_pinned": self.pinned,
            "at_validation": {"status": self.validated_status or None, "baseline": _number(self.validated_baseline)},
            "baseline_moved": self.baseline_moved,
            "rules": self.rules,
        }


def _pk(version: ModelVersion | None) -> int | None:
    return version.pk if version is not None else None


def _number(version: ModelVersion | None) -> int | None:
    return version.number if version is not None else None


def quality_verdict(version: ModelVersion) -> QualityVerdict:
    """The quality gate evaluated now: against the pinned baseline, or else today's production version."""
    policy = validation_policy(version.model)
    status, baseline, rules = quality_gate(version, policy)
    job = ValidationJob.objects.filter(version=version).select_related("quality_baseline").order_by("-created_at", "-id").first()
    finished = job is not None and job.is_finished
    return QualityVerdict(
        status=status, baseline=baseline, pinned=bool(policy and policy.pinned_baseline_id and baseline and baseline.pk == policy.pinned_baseline_id),
        rules=rules, validated_status=(job.quality_status or "") if finished else "", validated_baseline=job.quality_baseline if finished else None,
    )


def override_holds(request: TransitionRequest | None, verdict: QualityVerdict) -> bool:
    """A manager's override counts for the baseline it was given against; once the baseline moves it must be given again."""
    return bool(request and request.override_reason) and request.override_baseline_id == _pk(verdict.baseline)


def production_gate_problems(version: ModelVersion, request: TransitionRequest | None = None, verdict: QualityVerdict | None = None) -> list[str]:
    """What stands between a version and production now, besides approvals. Empty: nothing."""
    job = ValidationJob.objects.filter(version=version).order_by("-created_at", "-id").first()
    if job is None or not job.is_finished:
        return ["Validation has not finished yet; approve once it has passed."]
    problems = []
    if job.unsafe_finding:
        problems.append("Validation found unsafe serialization; this version can never reach production.")
    failed = list(job.checks.filter(verdict__in=[Verdict.FAIL, Verdict.ERROR]).values_list("name", flat=True))
    if failed or job.status == JobStatus.ERROR:
        problems.append(f"Validation did not pass ({', '.join(failed) or job.error or 'error'}); fix the files and register a new version.")
    verdict = verdict or quality_verdict(version)
    if not verdict.passed and not override_holds(request, verdict):
        against = f" against v{verdict.baseline.number} ({'pinned baseline' if verdict.pinned else 'in production now'})" if verdict.baseline else ""
        problem = f"The quality gate failed{against}: {verdict.failures()}. A manager may override it with a written reason."
        if request is not None and request.override_reason:
            given = f"v{request.override_baseline.number}" if request.override_baseline_id else "no baseline"
            problem += f" The override given against {given} no longer counts: the baseline moved."
        problems.append(problem)
    return problems


def _live_approvals(request: TransitionRequest, group) -> int:
    approvals = request.approvals.filter(decision=Decision.APPROVE, invalidated_at__isnull=True)
    if group is not None:
        approvals = approvals.filter(approver__groups=group)
    return approvals.values("approver").distinct().count()


@transaction.atomic
def version_transition(
    *, version: ModelVersion, to_stage: str, actor, reason: str = "", request: TransitionRequest | None = None, rollback: bool = False
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
        require(actor, Action.APPROVE_TRANSITION if request is not None else Action.REQUEST_TRANSITION, model)
    checked_transition(version.stage, to_stage, rollback=rollback)
    if (version.stage == Stage.DRAFT or to_stage == Stage.PRODUCTION) and unsafe_finding_blocks(version):
        raise ValidationError({"to_stage": ["Validation found code that would run when this version's files are unpickled; it cannot leave draft or return to production. Register a version saved without those objects (e.g. as safetensors)."]})
    if len(reason) > 5000:
        raise ValidationError({"reason": ["Keep the reason under 5000 characters."]})
    gate = None
    if not rollback:
        if request is not None and request.from_stage and request.from_stage != version.stage:
            raise ValidationError({"to_stage": [f"v{version.number} is {version.stage} now, not {request.from_stage} as when this was requested; ask again."]})
        required, group = review_policy(model, from_stage=version.stage, to_stage=to_stage, actor=actor if request is None else None)
        if required:
            if request is None or request.version_id != version.pk or request.to_stage != to_stage or request.status != RequestStatus.PENDING:
                leaving = " out of production" if version.stage == Stage.PRODUCTION else f" to {to_stage}"
                raise ValidationError({"to_stage": [f"Moving{leaving} needs {required} approval(s); request the transition for review."]})
            if _live_approvals(request, group) < required:
                raise ValidationError({"to_stage": [f"Moving to {to_stage} needs {required} approval(s); the request has fewer."]})
        if to_stage == Stage.PRODUCTION:
            gate = quality_verdict(version)
            problems = production_gate_problems(version, request, gate)
            if problems:
                raise ValidationError({"to_stage": problems})
    if request is not None and gate is not None:
        request.gate_at_decision = {"status": gate.status, "baseline": _number(gate.baseline), "overridden": not gate.passed}
        request.save(update_fields=["gate_at_decision"])

    authority = _takedown_authority(model, actor, request) if version.stage == Stage.PRODUCTION and to_stage != Stage.PRODUCTION else ""
    return version_stage_change(model=model, version=version, to_stage=to_stage, actor=actor, reason=reason, rollback=rollback, takedown_authority=authority)


def _takedown_authority(model: RegisteredModel, actor, request: TransitionRequest | None) -> str:
    if request is not None:
        return f"request #{request.pk}"
    return "manage" if can(actor, Action.MANAGE, model) else "policy: no approval required"


def _request_snapshot(request: TransitionRequest) -> dict:
    return {"version": request.version.number, "to_stage": request.to_stage, "status": request.status}


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
    request = TransitionRequest.objects.create(
        version=version, from_stage=version.stage, to_stage=to_stage, requested_by=actor, justification=justification
    )
    audit.record(actor=actor, obj=request, action="request.created", after=_request_snapshot(request), registered_model_id=model.pk)
    required, _ = review_policy(model, from_stage=version.stage, to_stage=to_stage, actor=actor)
    if required == 0:
        version_transition(version=version, to_stage=to_stage, actor=actor, reason=justification, request=None)
        _decide(request, RequestStatus.APPLIED, actor)
    return request


def _decide(request: TransitionRequest, status: str, actor, comment: str = "") -> None:
    before = _request_snapshot(request)
    request.status = status
    request.decided_at = timezone.now()
    request.save(update_fields=["status", "decided_at"])
    after = _request_snapshot(request) | ({"comment": comment} if comment else {})
    if request.gate_at_decision:
        after["quality_gate"] = request.gate_at_decision
    audit.record(actor=actor, obj=request, action=f"request.{status}", before=before, after=after, registered_model_id=request.version.model_id)


def _lock_pending(request: TransitionRequest) -> tuple[RegisteredModel, TransitionRequest]:
    model = RegisteredModel.objects.select_for_update().get(pk=request.version.model_id)
    request = TransitionRequest.objects.select_for_update().select_related("version").get(pk=request.pk)
    if request.status != RequestStatus.PENDING:
        raise ValidationError(f"This request is already {request.status}; nothing more can be decided on it.")
    return model, request


def request_is_stale(request: TransitionRequest) -> bool:
    """True when live approvals were given while another version held production: they need renewing."""
    current = ModelVersion.objects.filter(model_id=request.version.model_id, stage=Stage.PRODUCTION).values_list("pk", flat=True).first()
    return request.approvals.filter(invalidated_at__isnull=True, decision=Decision.APPROVE).exclude(production_version_at_approval_id=current).exists()


def _invalidate_stale_approvals(request: TransitionRequest, actor) -> int:
    current = ModelVersion.objects.filter(model_id=request.version.model_id, stage=Stage.PRODUCTION).values_list("pk", flat=True).first()
    stale = request.approvals.filter(invalidated_at__isnull=True).exclude(production_version_at_approval_id=current)
    count = stale.update(invalidated_at=timezone.now(), invalidation=Invalidation.STALE)
    if count:
        audit.record(actor=actor, obj=request, action="request.stale", after={"invalidated_approvals": count}, registered_model_id=request.version.model_id)
    return count


@transaction.atomic
def transition_request_approve(*, request: TransitionRequest, actor, comment: str = "") -> TransitionRequest:
    """Record an approval; the last required one applies the transition in the same transaction, and with it the
    production gates as they stand at this moment (a refused final approval leaves nothing behind)."""
    model, request = _lock_pending(request)
    require(actor, Action.APPROVE_TRANSITION, model)
    if request.requested_by_id == actor.pk:
        raise PermissionDenied("You requested this transition; someone else must approve it.")
    required, group = request_policy(request)
    if group is not None and not actor.groups.filter(pk=group.pk).exists():
        raise PermissionDenied(f"Approvals for {request.to_stage} must come from members of '{group.name}'.")
    _invalidate_stale_approvals(request, actor)
    if request.approvals.filter(approver=actor, invalidated_at__isnull=True).exists():
        raise ValidationError("You have already approved this request.")
    production = ModelVersion.objects.filter(model=model, stage=Stage.PRODUCTION).first()
    approval = Approval.objects.create(
        request=request, approver=actor, decision=Decision.APPROVE, comment=comment.strip(), production_version_at_approval=production
    )
    audit.record(actor=actor, obj=request, action="request.approved_by", after={"approval": approval.pk, "comment": approval.comment}, registered_model_id=model.pk)
    if _live_approvals(request, group) >= required:
        version_transition(version=request.version, to_stage=request.to_stage, actor=actor, reason=request.justification, request=request)
        _decide(request, RequestStatus.APPLIED, actor)
    return request


@transaction.atomic
def transition_request_reject(*, request: TransitionRequest, actor, comment: str) -> TransitionRequest:
    """Reject a pending request. A reviewer who approved it earlier changes their vote: the rejection replaces the
    approval (kept, marked replaced, audited), as on GitHub or Gerrit while a change is open."""
    model, request = _lock_pending(request)
    require(actor, Action.APPROVE_TRANSITION, model)
    if request.requested_by_id == actor.pk:
        raise PermissionDenied("You requested this transition; withdraw it instead of rejecting it.")
    comment = comment.strip()
    if not comment:
        raise ValidationError({"comment": ["Say why you reject it, so the requester knows what to fix."]})
    earlier = request.approvals.filter(approver=actor, invalidated_at__isnull=True).first()
    if earlier is not None:
        earlier.invalidated_at, earlier.invalidation = timezone.now(), Invalidation.REPLACED
        earlier.save(update_fields=["invalidated_at", "invalidation"])
        audit.record(
            actor=actor, obj=request, action="request.decision_changed", registered_model_id=model.pk,
            before={"approval": earlier.pk, "decision": earlier.decision, "comment": earlier.comment}, after={"decision": Decision.REJECT, "comment": comment},
        )
    Approval.objects.create(request=request, approver=actor, decision=Decision.REJECT, comment=comment)
    _decide(request, RequestStatus.REJECTED, actor, comment=comment)
    return request


@transaction.atomic
def transition_request_withdraw(*, request: TransitionRequest, actor) -> TransitionRequest:
    model, request = _lock_pending(request)
    require(actor, Action.VIEW, model)
    require_scope(actor, TokenScope.FULL, "withdrawing transition requests")
    if request.requested_by_id != actor.pk:
        raise PermissionDenied("Only the requester can withdraw a request.")
    _decide(request, RequestStatus.WITHDRAWN, actor)
    return request


@transaction.atomic
def transition_request_override_quality(*, request: TransitionRequest, actor, reason: str) -> TransitionRequest:
    """A manager lets a production request past the quality gate failing now, with a written reason (audited).

    The override holds for the baseline it was given against; if production moves, the gate is judged again."""
    model, request = _lock_pending(request)
    require(actor, Action.MANAGE, model)
    if request.to_stage != Stage.PRODUCTION:
        raise ValidationError("Only production requests pass the quality gate.")
    if len(reason.strip()) < 10:
        raise ValidationError({"reason": ["Write the reason for overriding the quality gate (at least a sentence)."]})
    verdict = quality_verdict(request.version)
    if verdict.passed:
        against = f" against v{verdict.baseline.number}" if verdict.baseline else ""
        raise ValidationError(f"The quality gate passes{against}; there is nothing to override.")
    request.override_reason, request.override_by, request.override_baseline = reason.strip(), actor, verdict.baseline
    request.save(update_fields=["override_reason", "override_by", "override_baseline"])
    audit.record(
        actor=actor, obj=request, action="request.quality_override", registered_model_id=model.pk,
        after={"reason": request.override_reason, "baseline": _number(verdict.baseline), "failed": verdict.failures()},
    )
    return request


@transaction.atomic
def production_rollback(*, model: RegisteredModel, actor, reason: str, to_version: ModelVersion | None = None) -> ProductionPointerChange:
    """Move the production pointer back: no re-upload, no new approval for a version that passed production review."""
    model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
    if not (can(actor, Action.APPROVE_TRANSITION, model) or can(actor, Action.MANAGE, model)):
        require(actor, Action.APPROVE_TRANSITION, model)
    if not reason.strip():
        raise ValidationError({"reason": ["Say why you roll back; it is kept in the pointer history."]})
    current = ModelVersion.objects.filter(model=model, stage=Stage.PRODUCTION).first()
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
