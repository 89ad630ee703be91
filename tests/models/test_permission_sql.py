"""The hand-written SQL copies of the permission rule agree with the ORM's, role by role.

`visible_model_sql` (the stage look-up and lineage's recursive query use it) must admit exactly the models
`restrict()` admits, and the raw token look-up of every API request must find exactly the user and token the ORM
finds. If either rule changes in one place only, these fail.
"""

import pytest
from django.contrib.auth.models import AnonymousUser, Group
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIRequestFactory

from apps.accounts.authentication import ApiTokenAuthentication, _user_for_token
from apps.accounts.models import ApiToken, TokenScope, token_digest
from apps.accounts.services import api_token_create
from apps.accounts.teams import team_leads_ensure
from apps.models.models import RegisteredModel
from apps.models.permissions import Action, restrict, visible_model_sql
from apps.models.services import model_create, model_permission_grant

pytestmark = pytest.mark.django_db

ROLES = ("owner", "team member", "team lead", "viewer by direct grant", "outsider", "superuser", "inactive team member", "anonymous")


@pytest.fixture
def world(make_user):
    """Three models: one in team `ml` created by its owner, one another user's with a viewer granted directly, one
    nobody but its creator and superusers may see."""
    team = Group.objects.create(name="ml")
    users = {
        "owner": make_user("owner"),
        "team member": make_user("member"),
        "team lead": make_user("lead"),
        "viewer by direct grant": make_user("viewer"),
        "outsider": make_user("outsider"),
        "superuser": make_user("root", is_superuser=True),
        "inactive team member": make_user("gone"),
        "anonymous": AnonymousUser(),
    }
    creator = make_user("creator")
    for name in ("owner", "team member", "inactive team member"):
        users[name].groups.add(team)
    team_model = model_create(name="vision", actor=users["owner"], team=team)
    users["team lead"].groups.add(team_leads_ensure(team=team))
    granted = model_create(name="tabular", actor=creator)
    model_permission_grant(model=granted, actor=creator, action=Action.VIEW, user=users["viewer by direct grant"])
    hidden = model_create(name="private", actor=creator)
    users["inactive team member"].is_active = False
    users["inactive team member"].save()
    return users, {"vision": team_model.pk, "tabular": granted.pk, "private": hidden.pk}


def _sql_visible(user) -> set[int]:
    condition, params = visible_model_sql("m", user)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT m.id FROM {RegisteredModel._meta.db_table} m WHERE {condition}", params)
        return {row[0] for row in cursor.fetchall()}


def _orm_visible(user) -> set[int]:
    return set(restrict(RegisteredModel.objects.all(), user, Action.VIEW).values_list("pk", flat=True))


EXPECTED = {
    "owner": {"vision"},
    "team member": {"vision"},
    "team lead": {"vision"},
    "viewer by direct grant": {"tabular"},
    "outsider": set(),
    "superuser": {"vision", "tabular", "private"},
    "inactive team member": set(),
    "anonymous": set(),
}


@pytest.mark.parametrize("role", ROLES)
def test_visible_model_sql_admits_exactly_what_restrict_admits_for_every_role(world, role):
    users, ids = world
    expected = {ids[name] for name in EXPECTED[role]}
    assert _orm_visible(users[role]) == expected
    assert _sql_visible(users[role]) == expected


def _authenticated(secret: str):
    request = APIRequestFactory().get("/api/v1/models/", HTTP_AUTHORIZATION=f"Bearer {secret}", REMOTE_ADDR="127.0.0.1")
    user, _ = ApiTokenAuthentication().authenticate(request)
    return user


@pytest.mark.parametrize("role", ["owner", "team member", "viewer by direct grant", "superuser"])
@pytest.mark.parametrize("limit", ["all models", "one model", "no model"])
def test_a_token_narrows_the_sql_rule_exactly_as_it_narrows_restrict(world, role, limit):
    users, ids = world
    chosen = {"all models": None, "one model": [ids["vision"]], "no model": []}[limit]
    models = RegisteredModel.objects.filter(pk__in=chosen) if chosen is not None else None
    _, secret = api_token_create(user=users[role], name="t", scope=TokenScope.READ, models=models)
    user = _authenticated(secret)
    assert _sql_visible(user) == _orm_visible(user)
    assert _sql_visible(user) <= {ids[name] for name in EXPECTED[role]}


def test_the_raw_token_lookup_finds_what_the_orm_finds(world):
    users, _ = world
    live, live_secret = api_token_create(user=users["owner"], name="live", scope=TokenScope.FULL)
    revoked, revoked_secret = api_token_create(user=users["team member"], name="revoked")
    ApiToken.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    inactive, inactive_secret = api_token_create(user=users["outsider"], name="inactive user")
    users["outsider"].is_active = False
    users["outsider"].save()
    for secret in (live_secret, revoked_secret, inactive_secret, "never-issued"):
        digest = token_digest(secret)
        raw = _user_for_token(digest)
        orm = ApiToken.objects.filter(digest=digest, revoked_at__isnull=True).select_related("user").first()
        assert (raw is None) == (orm is None), secret
        if orm is not None:
            assert (raw.pk, raw.token_id, raw.token_scope, raw.is_active) == (orm.user.pk, orm.pk, orm.scope, orm.user.is_active)
    assert _user_for_token(token_digest(live_secret)).token_id == live.pk
    assert _user_for_token(token_digest(revoked_secret)) is None
