"""Standing fixtures: an owner (manager of `model`), a reviewer (may view and approve), an outsider (no access).

Tests marked `postgres` need the PostgreSQL server; outside CI they skip with the reason when it is absent,
in CI (CI=true) its absence fails the run.
"""

import os

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.backends.postgresql.operations import DatabaseOperations as PostgresOperations
from rest_framework.test import APIClient

from apps.accounts.models import TokenScope

from apps.accounts.services import api_token_create
from apps.models.permissions import Action
from apps.models.services import model_create, model_permission_grant

from .factories import register_version

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


SERVICES = {
    "postgres": ("POSTGRES_AVAILABLE", "PostgreSQL is not reachable on 127.0.0.1:5432 (start it to run this test)"),
    "redis": ("REDIS_AVAILABLE", "Redis is not reachable on 127.0.0.1:6379 (start it to run this test)"),
}


def pytest_collection_modifyitems(config, items):
    for marker, (flag, reason) in SERVICES.items():
        if getattr(settings, flag):
            continue
        if IN_CI:
            raise pytest.UsageError(f"CI=true but {reason}.")
        for item in items:
            if marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


_truncate_every_table = PostgresOperations.sql_flush


def _sql_flush_by_delete(self, style, tables, *, reset_sequences=False, allow_cascade=False):
    """After each transactional test the tables are emptied by DELETE instead of one TRUNCATE of every table.

    TRUNCATE gives each of the ~110 tables and their indexes a new file: 0.5 s after every such test, spent by
    PostgreSQL on the file system, where DELETE on tables of a few rows takes milliseconds. Foreign keys are checked at
    commit (Django declares them DEFERRABLE INITIALLY DEFERRED), when every table is empty. A table with triggers of its
    own (the audit log refuses DELETE) is still truncated, and all of them are when sequences must restart.
    """
    if reset_sequences or allow_cascade or not tables:
        return _truncate_every_table(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
    with self.connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal")
        guarded = {name for (name,) in cursor.fetchall()} & set(tables)
    deletes = [f"{style.SQL_KEYWORD('DELETE FROM')} {style.SQL_FIELD(self.quote_name(table))};" for table in sorted(set(tables) - guarded)]
    return deletes + (_truncate_every_table(self, style, sorted(guarded)) if guarded else [])


PostgresOperations.sql_flush = _sql_flush_by_delete


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with an empty cache: failed-token counters (and cached bodies) never carry over between tests."""
    cache.clear()


@pytest.fixture(autouse=True)
def isolated_artifacts(settings, tmp_path):
    """Each test stores artifacts in a folder of its own, so no test sees another's blobs."""
    root = tmp_path / "artifacts"
    root.mkdir()
    settings.ARTIFACT_ROOT = str(root)
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(root), "base_url": None}},
    }
    return root


@pytest.fixture
def make_user(db):
    def make(username: str, **extra):
        user = get_user_model().objects.create_user(username=username, password="pw-" + username, **extra)
        return user

    return make


@pytest.fixture
def owner(make_user):
    return make_user("owner")


@pytest.fixture
def reviewer(make_user):
    return make_user("reviewer")


@pytest.fixture
def outsider(make_user):
    return make_user("outsider")


@pytest.fixture
def model(owner, reviewer):
    registered = model_create(name="sentiment", actor=owner, description="A **model** card.")
    model_permission_grant(model=registered, actor=owner, action=Action.VIEW, user=reviewer)
    model_permission_grant(model=registered, actor=owner, action=Action.APPROVE_TRANSITION, user=reviewer)
    return registered


@pytest.fixture
def version(model, owner):
    return register_version(model, owner)


def _client_for(user) -> APIClient:
    client = APIClient()
    _, secret = api_token_create(user=user, name="test", scope=TokenScope.FULL)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def api_for(db):
    return _client_for


@pytest.fixture
def web_for(client):
    def login(user):
        client.force_login(user)
        return client

    return login
