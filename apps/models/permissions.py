"""The one permission choke point. Views, API, admin and services all ask here.

Not allowed to view -> 404 (the model's existence is not revealed); allowed to view but not to act -> 403.

A user who authenticated with an API token carries it (`apps.accounts.models.active_token`), and every function here
applies it on top of the user's own permissions: the token's scope caps the actions (read: view only; register:
view and register versions; full: everything the user may do) and a token limited to chosen models sees no other
model (404, and absent from lists). A token never grants more than its user holds.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Group
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Exists, OuterRef
from django.http import Http404
from guardian.core import ObjectPermissionChecker
from guardian.shortcuts import get_users_with_perms

from apps.accounts.models import TokenGrant, TokenScope, active_token

from .models import RegisteredModel, RegisteredModelGroupObjectPermission, RegisteredModelUserObjectPermission


class Action(models.TextChoices):
    VIEW = "view_registeredmodel", "View"
    REGISTER = "register_version", "Register versions"
    REQUEST_TRANSITION = "request_transition", "Request transitions"
    APPROVE_TRANSITION = "approve_transition", "Approve transitions"
    MANAGE = "manage_model", "Manage"


def _perm(action: str) -> str:
    return f"models.{Action(action).value}"


SCOPE_ACTIONS: dict[str, frozenset[str]] = {
    TokenScope.READ: frozenset({Action.VIEW}),
    TokenScope.REGISTER: frozenset({Action.VIEW, Action.REGISTER}),
    TokenScope.FULL: frozenset(Action.values),
}
SCOPE_RANK = {scope: rank for rank, scope in enumerate(TokenScope.values)}


def _token_allows(token: TokenGrant | None, action: str, model_id: int | None = None) -> bool:
    if token is None:
        return True
    if action not in SCOPE_ACTIONS[token.scope]:
        return False
    return model_id is None or token.model_ids is None or model_id in token.model_ids


def _scope_refusal(token: TokenGrant, doing: str) -> PermissionDenied:
    wider = [f"'{scope}'" for scope in TokenScope.values if SCOPE_RANK[scope] > SCOPE_RANK[token.scope]]
    return PermissionDenied(
        f"This API token has the '{token.scope}' scope ({TokenScope(token.scope).label.lower()}), which does not allow"
        f" {doing}. Use a token with the {' or '.join(wider)} scope; create one on the API tokens page."
    )


def _refuse(user, action: str, model: RegisteredModel) -> PermissionDenied:
    token = active_token(user)
    if token is not None and action not in SCOPE_ACTIONS[token.scope]:
        return _scope_refusal(token, f"'{Action(action).label}' on model '{model.name}'")
    return PermissionDenied(f"You need the '{Action(action).label}' permission on model '{model.name}'.")


def require_scope(user, scope: str, doing: str) -> None:
    """For writes that are no action on one model (creating a model, registering a dataset, withdrawing a request):
    refuse them (403) when the user's active API token has a narrower scope than `scope`. No token: nothing to check."""
    token = active_token(user)
    if token is not None and SCOPE_RANK[token.scope] < SCOPE_RANK[scope]:
        raise _scope_refusal(token, doing)


def token_limits_models(user) -> bool:
    """True when the user's active API token sees only chosen models (whole-registry reads such as the audit log are refused)."""
    token = active_token(user)
    return token is not None and token.model_ids is not None


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
    token = active_token(user)
    if not _token_allows(token, action):
        return queryset.none()
    if token is not None and token.model_ids is not None:
        queryset = queryset.filter(pk__in=token.model_ids)
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
    token = active_token(user)
    limit, limit_params = "", []
    if token is not None and token.model_ids is not None:
        if not token.model_ids:
            return "1 = 0", []
        limit_params = sorted(token.model_ids)
        limit = f"{model_alias}.id IN ({', '.join(['%s'] * len(limit_params))}) AND "
    if user.is_superuser:
        return (limit + "1 = 1"), limit_params
    direct = RegisteredModelUserObjectPermission._meta.db_table
    via_group = RegisteredModelGroupObjectPermission._meta.db_table
    sql = (
        f"(EXISTS (SELECT 1 FROM {direct} up JOIN auth_permission p ON p.id = up.permission_id"
        f" WHERE up.content_object_id = {model_alias}.id AND up.user_id = %s AND p.codename = %s)"
        f" OR EXISTS (SELECT 1 FROM {via_group} gp JOIN auth_permission p ON p.id = gp.permission_id"
        f" JOIN auth_user_groups ug ON ug.group_id = gp.group_id"
        f" WHERE gp.content_object_id = {model_alias}.id AND ug.user_id = %s AND p.codename = %s))"
    )
    return limit + sql, [*limit_params, user.pk, Action.VIEW.value, user.pk, Action.VIEW.value]


def can(user, action: str, model: RegisteredModel) -> bool:
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if not _token_allows(active_token(user), action, model.pk):
        return False
    return user.has_perm(_perm(action), model)


def require(user, action: str, model: RegisteredModel) -> None:
    """Raise Http404 when the user may not see the model, PermissionDenied when they may see it but not act."""
    if not can(user, Action.VIEW, model):
        raise Http404("No such model.")
    if action != Action.VIEW and not can(user, action, model):
        raise _refuse(user, action, model)


def require_rollback(user, model: RegisteredModel) -> None:
    """Pointing production or an alias back at a version that held it needs no new approval: approvers and managers may.
    404 for who may not see the model, 403 (naming the approver's right) for who may see it but neither approve nor manage."""
    if not can(user, Action.MANAGE, model):
        require(user, Action.APPROVE_TRANSITION, model)


def get_model_for(user, name: str, action: str = Action.VIEW, queryset=None, *, for_page: bool = False) -> RegisteredModel:
    """Load a model by name for a user and action, or raise 404/403 as above.

    Viewing is checked in the same query that loads the model; other actions cost one more check. `for_page`: a page
    reads in that same query what the user holds on the model (`actions_for` then asks nothing more) and the names of
    its team and creator.
    """
    if queryset is None:
        model = _visible_model_named(user, name, for_page=for_page)
    else:
        model = restrict(queryset.filter(name=name), user, Action.VIEW).first()
    if model is None:
        raise Http404("No such model.")
    if action != Action.VIEW and not can(user, action, model):
        raise _refuse(user, action, model)
    return model


def users_holding(model: RegisteredModel, action: str) -> models.QuerySet:
    """Active users granted `action` on the model, directly or through a group (superusers only through a grant)."""
    return get_users_with_perms(model, only_with_perms_in=[Action(action).value], with_group_users=True).filter(is_active=True)


def _visible_model_named(user, name: str, *, for_page: bool = False) -> RegisteredModel | None:
    """The model named `name` if the user may view it, in one hand-written query (`visible_model_sql`): every page and
    API request of a model starts here, and building `restrict`'s two EXISTS subqueries through the ORM cost more
    than running them (about 2 ms a request).

    `for_page`: the same query also reads what a page's header shows: one row per permission the user holds on the
    model, directly or through a group (what guardian's checker reads in two queries), kept for `actions_for`, and
    the names of its team and creator (loaded as those objects with only their names)."""
    condition, params = visible_model_sql("m", user)
    if condition == "1 = 0":
        return None
    table = RegisteredModel._meta.db_table
    if not for_page:
        sql = f"SELECT m.* FROM {table} m WHERE m.name = %s AND {condition}"
        return next(iter(RegisteredModel.objects.raw(sql, [name, *params])), None)
    user_model = get_user_model()
    username = user_model._meta.get_field(user_model.USERNAME_FIELD)
    direct = RegisteredModelUserObjectPermission._meta.db_table
    via_group = RegisteredModelGroupObjectPermission._meta.db_table
    held = (
        f"SELECT up.content_object_id AS model_id, p.codename FROM {direct} up JOIN auth_permission p ON p.id = up.permission_id"
        f" WHERE up.user_id = %s"
        f" UNION ALL SELECT gp.content_object_id, p.codename FROM {via_group} gp JOIN auth_permission p ON p.id = gp.permission_id"
        f" JOIN auth_user_groups ug ON ug.group_id = gp.group_id WHERE ug.user_id = %s"
    )
    sql = (
        f"SELECT m.*, held.codename AS held_codename, u.{username.column} AS creator_name, g.name AS team_name FROM {table} m"
        f" LEFT JOIN ({held}) held ON held.model_id = m.id"
        f" LEFT JOIN {user_model._meta.db_table} u ON u.{user_model._meta.pk.column} = m.created_by_id"
        f" LEFT JOIN {Group._meta.db_table} g ON g.id = m.team_id"
        f" WHERE m.name = %s AND {condition}"
    )
    rows = list(RegisteredModel.objects.raw(sql, [user.pk, user.pk, name, *params]))
    if not rows:
        return None
    model = rows[0]
    held_actions = Action.values if user.is_superuser else (row.held_codename for row in rows if row.held_codename)
    model.held_actions = (user.pk, frozenset(held_actions))
    if model.created_by_id is not None:
        model.created_by = user_model.from_db(model._state.db, ["id", username.attname], [model.created_by_id, model.creator_name])
    if model.team_id is not None:
        model.team = Group.from_db(model._state.db, ["id", "name"], [model.team_id, model.team_name])
    return model


def actions_for(user, model: RegisteredModel) -> set[str]:
    """All actions the user may take on the model (one checker, two queries; none when the model was loaded
    `for_page`), for showing only buttons that work."""
    if user is None or not user.is_authenticated or not user.is_active:
        return set()
    token = active_token(user)
    if not _token_allows(token, Action.VIEW, model.pk):
        return set()
    allowed = SCOPE_ACTIONS[token.scope] if token is not None else set(Action.values)
    held = getattr(model, "held_actions", None)  # read with the model for this user (get_model_for's for_page)
    return set(held[1] if held is not None and held[0] == user.pk else ObjectPermissionChecker(user).get_perms(model)) & allowed
