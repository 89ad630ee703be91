import hashlib
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from apps.audit import services as audit
from apps.events.models import EventType
from apps.events.services import event_emit
from apps.models.models import RegisteredModel
from apps.models.permissions import Action, require

from .aliases import PRODUCTION_ALIAS, checked_alias_name
from .lifecycle import Stage, checked_transition
from .models import AliasChange, Deployment, ModelAlias, ModelVersion, PointerChangeKind, ProductionPointerChange, StageTransition


@dataclass
class IncomingFile:
    """One file to register: its relative path, content, and the digest computed while it was received.

    `content` is None for a file an upload session already stored under its digest (apps.versions.upload_sessions).
    """

    path: str
    content: File | None
    sha256: str
    size: int
    oversized: bool = False
    declared_sha256: str | None = None


def incoming_from_upload(uploaded, *, path: str | None = None, declared_sha256: str | None = None) -> IncomingFile:
    """Wrap a file received through `HashingUploadHandler` (digest already computed on the fly)."""
    return IncomingFile(
        path=path or uploaded.name,
        content=uploaded,
        sha256=uploaded.sha256,
        size=uploaded.received_bytes,
        oversized=uploaded.oversized,
        declared_sha256=declared_sha256,
    )


def incoming_from_bytes(path: str, data: bytes) -> IncomingFile:
    return IncomingFile(path=path, content=ContentFile(data), sha256=hashlib.sha256(data).hexdigest(), size=len(data))


@transaction.atomic
def version_update(*, version: ModelVersion, actor, description: str, tags: list[str]) -> ModelVersion:
    """Change what may change after registration: description and tags. Everything else is immutable."""
    require(actor, Action.REGISTER, version.model)
    before = {"description": version.description, "tags": sorted(version.tags.names())}
    version.description = description
    version.save(update_fields=["description", "updated_at"])
    version.tags.set(tags)
    audit.record(
        actor=actor, obj=version, action="version.updated", before=before,
        after={"description": description, "tags": sorted(tags)}, registered_model_id=version.model_id,
    )
    return version


@transaction.atomic
def deployment_report(
    *, model: RegisteredModel, environment: str, version: ModelVersion, actor, follows: str | None = None
) -> "Deployment":
    """Record what a deployment target serves, and (when given) the alias it follows: drift is judged against that
    alias (production until told otherwise). Reporters hold the register permission (pipeline accounts do)."""
    require(actor, Action.REGISTER, model)
    if slugify(environment) != environment or not environment or len(environment) > 64:
        raise ValidationError({"environment": ["Name environments with lowercase letters, digits and '-', e.g. prod-eu."]})
    if follows is not None:
        follows = checked_alias_name(follows)
    deployment = Deployment.objects.select_for_update().filter(model=model, environment=environment).first()
    before = {"version": deployment.version.number, "follows": deployment.follows} if deployment else None
    if deployment is None:
        deployment = Deployment(model=model, environment=environment)
    deployment.version, deployment.reported_by, deployment.reported_at = version, actor, timezone.now()
    if follows is not None:
        deployment.follows = follows
    deployment.save()
    audit.record(
        actor=actor, obj=deployment, action="deployment.reported", before=before,
        after={"environment": environment, "version": version.number, "follows": deployment.follows}, registered_model_id=model.pk,
    )
    return deployment


@transaction.atomic
def alias_pointer_change(
    *, model: RegisteredModel, alias: str, version: ModelVersion | None, actor, reason: str, rollback: bool = False
) -> AliasChange:
    """Apply a move of a free alias already decided: point it at `version` (None: delete it), its history row, the
    audit record and the event. The caller holds the model's row lock and has decided the move may happen: only
    `apps.approvals.services.version_transition` calls this (as `version_stage_change` for stages)."""
    if alias == PRODUCTION_ALIAS:
        raise ValueError("The production alias moves with the production stage (version_stage_change).")
    current = ModelAlias.objects.select_for_update().filter(model=model, name=alias).select_related("version").first()
    previous = current.version if current else None
    if version is None:
        if current is None:
            raise ValidationError({"alias": [f"Model '{model.name}' has no alias '{alias}'."]})
        current.delete()
        kind = PointerChangeKind.RETIREMENT
    else:
        if version.model_id != model.pk:
            raise ValidationError({"version": [f"v{version.number} is not a version of '{model.name}'."]})
        if previous is not None and previous.pk == version.pk:
            raise ValidationError({"version": [f"@{alias} already points at v{version.number}."]})
        if current is None:
            current = ModelAlias(model=model, name=alias)
        current.version = version
        current.save()
        kind = PointerChangeKind.ROLLBACK if rollback else PointerChangeKind.PROMOTION
    change = AliasChange.objects.create(model=model, alias=alias, version=version, previous_version=previous, actor=actor, reason=reason, kind=kind)
    old, new = (previous.number if previous else None), (version.number if version else None)
    action = "alias.deleted" if version is None else "alias.rolled_back" if rollback else "alias.moved"
    audit.record(
        actor=actor, obj=change, action=action,
        before={"alias": alias, "version": old}, after={"alias": alias, "version": new, "reason": reason}, registered_model_id=model.pk,
    )
    event_emit(
        model=model, actor=actor, event_type=EventType.ALIAS_CHANGED,
        payload={"alias": alias, "old_version": old, "new_version": new, "reason": reason, "rollback": rollback},
    )
    return change


@transaction.atomic
def version_stage_change(
    *, model: RegisteredModel, version: ModelVersion, to_stage: str, actor, reason: str, rollback: bool = False, takedown_authority: str = ""
) -> StageTransition:
    """Apply a move already decided: the stage, its history row, the production pointer, the audit records and events.

    Refuses a move the lifecycle table does not allow. The caller holds the model's and version's row locks and has
    decided the move may happen: only `apps.approvals.services.version_transition` calls this. Promoting archives
    the previous production version; leaving production records the pointer's retirement, with `takedown_authority`
    saying who allowed it. Events are written in this transaction (the outbox) and delivered to webhooks after it
    commits.
    """
    checked_transition(version.stage, to_stage, rollback=rollback)
    previous_production = None
    if to_stage == Stage.PRODUCTION:
        previous_production = ModelVersion.objects.select_for_update().production().filter(model=model).first()
        if previous_production is not None:
            _stage_set(previous_production, Stage.ARCHIVED, actor, f"Replaced in production by v{version.number}.")
    transition = _stage_set(version, to_stage, actor, reason)

    if to_stage == Stage.PRODUCTION:
        kind = PointerChangeKind.ROLLBACK if rollback else PointerChangeKind.PROMOTION
        ProductionPointerChange.objects.create(model=model, version=version, previous_version=previous_production, actor=actor, reason=reason, kind=kind)
        event_emit(
            model=model, actor=actor,
            event_type=EventType.PRODUCTION_ROLLED_BACK if rollback else EventType.PRODUCTION_CHANGED,
            payload={"old_version": previous_production.number if previous_production else None, "new_version": version.number, "reason": reason},
        )
    elif transition.from_stage == Stage.PRODUCTION:
        ProductionPointerChange.objects.create(
            model=model, version=None, previous_version=version, actor=actor, reason=reason, kind=PointerChangeKind.RETIREMENT
        )
        audit.record(
            actor=actor, obj=model, action="production.taken_down", registered_model_id=model.pk,
            before={"version": version.number}, after={"version": None, "reason": reason, "authority": takedown_authority},
        )
        event_emit(
            model=model, actor=actor, event_type=EventType.PRODUCTION_CHANGED,
            payload={"old_version": version.number, "new_version": None, "reason": reason},
        )
    return transition


def _stage_set(version: ModelVersion, to_stage: str, actor, reason: str) -> StageTransition:
    from_stage = version.stage
    version.stage = to_stage
    version.stage_changed_at = timezone.now()
    version.save(update_fields=["stage", "stage_changed_at", "updated_at"])
    transition = StageTransition.objects.create(version=version, from_stage=from_stage, to_stage=to_stage, actor=actor, reason=reason)
    audit.record(
        actor=actor, obj=version, action="version.stage_changed",
        before={"stage": from_stage}, after={"stage": to_stage, "reason": reason}, registered_model_id=version.model_id,
    )
    event_emit(
        model=version.model, actor=actor, event_type=EventType.VERSION_STAGE_CHANGED,
        payload={"version": version.number, "from_stage": from_stage, "to_stage": to_stage, "reason": reason},
    )
    return transition
