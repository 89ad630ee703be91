from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from guardian.shortcuts import assign_perm, remove_perm

from apps.audit import services as audit

from .models import RegisteredModel
from .names import canonical_model_name
from .permissions import Action, require

TEAM_ACTIONS = (Action.VIEW, Action.REGISTER, Action.REQUEST_TRANSITION)


def _snapshot(model: RegisteredModel) -> dict:
    return {
        "name": model.name,
        "description": model.description,
        "team": model.team.name if model.team else None,
        "tags": sorted(model.tags.names()),
    }


@transaction.atomic
def model_create(*, name: str, actor, description: str = "", team: Group | None = None, tags: list[str] | None = None) -> RegisteredModel:
    """Register a model. The creator may do everything on it; the owning team may view, register and request."""
    if not actor.is_active:
        raise ValidationError("Inactive users cannot create models.")
    model = RegisteredModel(name=canonical_model_name(name), description=description, team=team, created_by=actor)
    model.full_clean(exclude=["last_version_number"], validate_unique=False, validate_constraints=False)
    if RegisteredModel.objects.filter(name__iexact=model.name).exists():
        raise ValidationError({"name": [f"A model named '{model.name}' already exists (names are case-insensitive); pick another name."]})
    try:
        with transaction.atomic():
            model.save()
    except IntegrityError as exc:
        raise ValidationError({"name": [f"A model named '{model.name}' already exists; pick another name."]}) from exc
    if tags:
        model.tags.set(tags)
    for action in Action.values:
        assign_perm(f"models.{action}", actor, model)
    if team is not None:
        for action in TEAM_ACTIONS:
            assign_perm(f"models.{action}", team, model)
    audit.record(actor=actor, obj=model, action="model.created", after=_snapshot(model), registered_model_id=model.pk)
    return model


@transaction.atomic
def model_update(*, model: RegisteredModel, actor, description: str, team: Group | None, tags: list[str]) -> RegisteredModel:
    require(actor, Action.MANAGE, model)
    before = _snapshot(model)
    model.description = description
    model.team = team
    model.full_clean(exclude=["last_version_number", "name"], validate_unique=False)
    model.save(update_fields=["description", "team", "updated_at"])
    model.tags.set(tags)
    audit.record(actor=actor, obj=model, action="model.updated", before=before, after=_snapshot(model), registered_model_id=model.pk)
    return model


@transaction.atomic
def model_permission_grant(*, model: RegisteredModel, actor, action: str, user=None, group: Group | None = None) -> None:
    require(actor, Action.MANAGE, model)
    holder = _holder(user, group)
    assign_perm(f"models.{Action(action).value}", holder, model)
    audit.record(
        actor=actor, obj=model, action="model.permission_granted",
        after={"holder": _holder_label(user, group), "permission": action}, registered_model_id=model.pk,
    )


@transaction.atomic
def model_permission_revoke(*, model: RegisteredModel, actor, action: str, user=None, group: Group | None = None) -> None:
    require(actor, Action.MANAGE, model)
    holder = _holder(user, group)
    if action == Action.MANAGE and user is not None and user == actor:
        raise ValidationError("You cannot revoke your own manage permission; ask another manager.")
    remove_perm(f"models.{Action(action).value}", holder, model)
    audit.record(
        actor=actor, obj=model, action="model.permission_revoked",
        before={"holder": _holder_label(user, group), "permission": action}, registered_model_id=model.pk,
    )


def _holder(user, group):
    if (user is None) == (group is None):
        raise ValidationError("Choose either a user or a group.")
    return user if user is not None else group


def _holder_label(user, group) -> str:
    return f"user:{user.get_username()}" if user is not None else f"group:{group.name}"
