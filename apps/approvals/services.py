from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.audit import services as audit
from apps.models.models import RegisteredModel
from apps.models.permissions import Action, require
from apps.validation.services import unsafe_finding_blocks
from apps.versions.models import ModelVersion, ProductionPointerChange, StageTransition

from .lifecycle import IllegalTransition, Stage, check_transition


def required_action(to_stage: str) -> str:
    """Until approval gates arrive, moving into production needs the approve permission; other moves the request one."""
    return Action.APPROVE_TRANSITION if to_stage == Stage.PRODUCTION else Action.REQUEST_TRANSITION


@transaction.atomic
def version_transition(*, version: ModelVersion, to_stage: str, actor, reason: str = "") -> StageTransition:
    """The only code that changes a version's stage.

    Locks the model row so concurrent promotions serialise; promoting to production archives the
    version that was there and records the pointer move. Illegal moves raise ValidationError.
    """
    model = RegisteredModel.objects.select_for_update().get(pk=version.model_id)
    require(actor, required_action(to_stage), model)
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    try:
        check_transition(version.stage, to_stage)
    except IllegalTransition as exc:
        raise ValidationError({"to_stage": [str(exc)]}) from exc
    if version.stage == Stage.DRAFT and unsafe_finding_blocks(version):
        raise ValidationError({"to_stage": ["Validation found code that would run when this version's files are unpickled; it cannot leave draft. Register a version saved without those objects (e.g. as safetensors)."]})
    if len(reason) > 5000:
        raise ValidationError({"reason": ["Keep the reason under 5000 characters."]})

    previous_production = None
    if to_stage == Stage.PRODUCTION:
        previous_production = ModelVersion.objects.select_for_update().filter(model=model, stage=Stage.PRODUCTION).first()
        if previous_production is not None:
            _apply(previous_production, Stage.ARCHIVED, actor, f"Replaced in production by v{version.number}.")
    transition = _apply(version, to_stage, actor, reason)

    if to_stage == Stage.PRODUCTION:
        ProductionPointerChange.objects.create(model=model, version=version, previous_version=previous_production, actor=actor, reason=reason)
    elif transition.from_stage == Stage.PRODUCTION:
        ProductionPointerChange.objects.create(model=model, version=None, previous_version=version, actor=actor, reason=reason)
    return transition


def _apply(version: ModelVersion, to_stage: str, actor, reason: str) -> StageTransition:
    from_stage = version.stage
    version.stage = to_stage
    version.stage_changed_at = timezone.now()
    version.save(update_fields=["stage", "stage_changed_at", "updated_at"])
    transition = StageTransition.objects.create(version=version, from_stage=from_stage, to_stage=to_stage, actor=actor, reason=reason)
    audit.record(
        actor=actor, obj=version, action="version.stage_changed",
        before={"stage": from_stage}, after={"stage": to_stage, "reason": reason}, registered_model_id=version.model_id,
    )
    return transition

