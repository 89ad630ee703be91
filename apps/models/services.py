from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from guardian.shortcuts import assign_perm, remove_perm

from apps.accounts.models import TokenScope
from apps.accounts.teams import team_leads_ensure, team_leads_group
from apps.audit import services as audit

from .models import RegisteredModel
from .names import canonical_model_name
from .permissions import Action, require, require_scope

TEAM_ACTIONS = (Action.VIEW, Action.REGISTER, Action.REQUEST_TRANSITION)
LEAD_ACTIONS = (Action.VIEW, Action.APPROVE_TRANSITION)


def _snapshot(model: RegisteredModel) -> dict:
    return {
        "name": model.name,
        "description": model.description,
        "team": model.team.name if model.team else None,
        "tags": sorted(model.tags.names()),
    }


@transaction.atomic
def model_create(*, name: str, actor, description: str = "", team: Group | None = None, tags: list[str] | None = None) -> RegisteredModel:
    """Register a model. The creator may do everything on it; the owning team may view, register and request, and
    the team's leads may view and approve (so a request always has someone to go to)."""
    if not actor.is_active:
        raise ValidationError("Inactive users cannot create models.")
    require_scope(actor, TokenScope.FULL, "creating models")
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
    audit.record(actor=actor, obj=model, action="model.created", after=_snapshot(model), registered_model_id=model.pk)
    if team is not None:
        _team_grants(model=model, actor=actor, team=team, grant=True)
    return model


def _team_grants(*, model: RegisteredModel, actor, team: Group, grant: bool) -> None:
    """Give a team its rights on the model and its leads group (created if need be) view and approve, or take them back; audited."""
    change = model_permission_grant if grant else model_permission_revoke
    for action in TEAM_ACTIONS:
        change(model=model, actor=actor, action=action, group=team)
    leads = team_leads_ensure(team=team) if grant else team_leads_group(team)
    for action in LEAD_ACTIONS if leads is not None else ():
        change(model=model, actor=actor, action=action, group=leads)


@transaction.atomic
def model_update(*, model: RegisteredModel, actor, description: str, team: Group | None, tags: list[str]) -> RegisteredModel:
    """Edit a model's card, team and tags. Moving it to another team moves the team's and its leads' rights with it."""
    require(actor, Action.MANAGE, model)
    before = _snapshot(model)
    old_team = model.team
    model.description = description
    model.team = team
    model.full_clean(exclude=["last_version_number", "name"], validate_unique=False)
    model.save(update_fields=["description", "team", "updated_at"])
    model.tags.set(tags)
    audit.record(actor=actor, obj=model, action="model.updated", before=before, after=_snapshot(model), registered_model_id=model.pk)
    if old_team != team:
        if old_team is not None:
            _team_grants(model=model, actor=actor, team=old_team, grant=False)
        if team is not None:
            _team_grants(model=model, actor=actor, team=team, grant=True)
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
