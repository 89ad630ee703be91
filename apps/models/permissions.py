"""The one permission choke point. Views, API, admin and services all ask here.

Not allowed to view -> 404 (the model's existence is not revealed); allowed to view but not to act -> 403.
"""

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Exists, OuterRef
from django.http import Http404
from guardian.core import ObjectPermissionChecker

from .models import RegisteredModel, RegisteredModelGroupObjectPermission, RegisteredModelUserObjectPermission


class Action(models.TextChoices):
    VIEW = "view_registeredmodel", "View"
    REGISTER = "register_version", "Register versions"
    REQUEST_TRANSITION = "request_transition", "Request transitions"
    APPROVE_TRANSITION = "approve_transition", "Approve transitions"
    MANAGE = "manage_model", "Manage"


def _perm(action: str) -> str:
    return f"models.{Action(action).value}"


def visible_models(user) -> models.QuerySet[RegisteredModel]:
    """Every registered model the user may view (directly or through a group), as one query."""
    return models_where(user, Action.VIEW)


def models_where(user, action: str) -> models.QuerySet[RegisteredModel]:
    """Every registered model on which the user holds `action` (directly or through a group), as one query."""
    return restrict(RegisteredModel.objects.all(), user, action)


def restrict(queryset: models.QuerySet[RegisteredModel], user, action: str) -> models.QuerySet[RegisteredModel]:
    """Narrow a queryset of registered models to those on which the user holds `action` (like NetBox's `.restrict`).

    Adds two EXISTS conditions on guardian's direct foreign-key permission tables to the same query, so a
    look-up by name stays an index look-up however many models the user may see.
    """
    if user is None or isinstance(user, AnonymousUser) or not user.is_active:
        return queryset.none()
    if user.is_superuser:
        return queryset
    codename = Action(action).value
    direct = RegisteredModelUserObjectPermission.objects.filter(content_object=OuterRef("pk"), user=user, permission__codename=codename)
    through_group = RegisteredModelGroupObjectPermission.objects.filter(
        content_object=OuterRef("pk"), group__user=user, permission__codename=codename
    )
    return queryset.filter(Exists(direct) | Exists(through_group))


def visible_model_sql(model_alias: str, user) -> tuple[str, list]:
    """The same test as `visible_models`, as an SQL condition on `<model_alias>.id`, for hand-written hot-path queries."""
    if user is None or not user.is_authenticated or not user.is_active:
        return "1 = 0", []
    if user.is_superuser:
        return "1 = 1", []
    direct = RegisteredModelUserObjectPermission._meta.db_table
    via_group = RegisteredModelGroupObjectPermission._meta.db_table
    sql = (
        f"(EXISTS (SELECT 1 FROM {direct} up JOIN auth_permission p ON p.id = up.permission_id"
        f" WHERE up.content_object_id = {model_alias}.id AND up.user_id = %s AND p.codename = %s)"
        f" OR EXISTS (SELECT 1 FROM {via_group} gp JOIN auth_permission p ON p.id = gp.permission_id"
        f" JOIN auth_user_groups ug ON ug.group_id = gp.group_id"
        f" WHERE gp.content_object_id = {model_alias}.id AND ug.user_id = %s AND p.codename = %s))"
    )
    return sql, [user.pk, Action.VIEW.value, user.pk, Action.VIEW.value]


def can(user, action: str, model: RegisteredModel) -> bool:
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return user.has_perm(_perm(action), model)


def require(user, action: str, model: RegisteredModel) -> None:
    """Raise Http404 when the user may not see the model, PermissionDenied when they may see it but not act."""
    if not can(user, Action.VIEW, model):
        raise Http404("No such model.")
    if action != Action.VIEW and not can(user, action, model):
        raise PermissionDenied(f"You need the '{Action(action).label}' permission on model '{model.name}'.")


def get_model_for(user, name: str, action: str = Action.VIEW, queryset=None) -> RegisteredModel:
    """Load a model by name for a user and action, or raise 404/403 as above.

    Viewing is checked in the same query that loads the model; other actions cost one more check.
    """
    queryset = queryset if queryset is not None else RegisteredModel.objects.all()
    model = restrict(queryset.filter(name=name), user, Action.VIEW).first()
    if model is None:
        raise Http404("No such model.")
    if action != Action.VIEW and not can(user, action, model):
        raise PermissionDenied(f"You need the '{Action(action).label}' permission on model '{model.name}'.")
    return model


def actions_for(user, model: RegisteredModel) -> set[str]:
    """All actions the user may take on the model (one checker, two queries), for showing only buttons that work."""
    if user is None or not user.is_authenticated or not user.is_active:
        return set()
    return set(ObjectPermissionChecker(user).get_perms(model)) & set(Action.values)
