"""Django's per-request health check (SELECT 1) runs only on a connection idle DATABASE_HEALTH_CHECK_IDLE_SECONDS or
more (registry_site.postgresql): under load it would cost every request a round trip."""

import time

import pytest
from django.db import connections

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.fixture
def checks(monkeypatch):
    connection = connections["default"]
    connection.ensure_connection()
    ran = []
    real = connection.is_usable
    monkeypatch.setattr(connection, "is_usable", lambda: ran.append(1) or real())
    monkeypatch.setattr(connection, "health_check_enabled", True)
    return ran


def _request_boundary():
    connections["default"].health_check_done = False  # what close_if_unusable_or_obsolete does at each request's start and end


def test_a_recently_used_connection_is_not_checked_and_an_idle_one_is(checks, settings):
    settings.DATABASE_HEALTH_CHECK_IDLE_SECONDS = 5
    connections["default"].cursor().close()
    _request_boundary()
    connections["default"].cursor().close()
    assert checks == []
    connections["default"].used_at = time.monotonic() - 6
    _request_boundary()
    connections["default"].cursor().close()
    assert checks == [1]


def test_zero_checks_before_every_request_as_django_does(checks, settings):
    settings.DATABASE_HEALTH_CHECK_IDLE_SECONDS = 0
    connections["default"].cursor().close()
    _request_boundary()
    connections["default"].cursor().close()
    assert checks == [1]
