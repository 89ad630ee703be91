from django.core.exceptions import ValidationError
from django.db import transaction

from apps.audit import services as audit
from apps.models.models import RegisteredModel
from apps.models.permissions import Action, require
from apps.versions.models import ModelVersion

from .models import ModelCard

CARD_FIELDS = ("body", "license", "intended_use", "limitations", "training_data")
MAX_BODY_CHARS = 100_000
MAX_FIELD_CHARS = 10_000


def _snapshot(card: ModelCard) -> dict:
    return {name: getattr(card, name) for name in (*CARD_FIELDS, "source")}


@transaction.atomic
def card_update(
    *, model: RegisteredModel, version: ModelVersion | None = None, actor, body: str, license: str = "", intended_use: str = "",
    limitations: str = "", training_data: str = "", source: str = "",
) -> ModelCard:
    """Write the model's card (needs *manage*) or a version's (needs *register versions*), audited with before and after."""
    require(actor, Action.MANAGE if version is None else Action.REGISTER, model)
    if version is not None and version.model_id != model.pk:
        raise ValidationError("That version belongs to another model.")
    values = {"body": body, "license": license, "intended_use": intended_use, "limitations": limitations, "training_data": training_data}
    values = {name: (value or "").strip() for name, value in values.items()}
    errors = {name: [f"Keep it under {MAX_FIELD_CHARS} characters."] for name, value in values.items() if name != "body" and len(value) > MAX_FIELD_CHARS}
    if len(values["body"]) > MAX_BODY_CHARS:
        errors["body"] = [f"Keep the card under {MAX_BODY_CHARS} characters."]
    if len(values["license"]) > 100:
        errors["license"] = ["Give an SPDX identifier or a short name (at most 100 characters)."]
    if errors:
        raise ValidationError(errors)
    card = ModelCard.objects.select_for_update().filter(model=model, version=version).first() or ModelCard(model=model, version=version)
    before = _snapshot(card) if card.pk else None
    for name, value in values.items():
        setattr(card, name, value)
    card.source, card.updated_by = source[:200], actor
    card.save()
    audit.record(actor=actor, obj=card, action="card.updated", before=before, after=_snapshot(card), registered_model_id=model.pk)
    return card
