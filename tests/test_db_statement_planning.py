"""Statement planning on PostgreSQL: server-side binding and prepared statements are settings (DATABASE_SERVER_SIDE_BINDING,
DATABASE_PREPARE_THRESHOLD) that reach the connection through registry_site.postgresql, keep its bounded waits, and stop
start-up naming the variable when they are bad or contradict each other."""

import subprocess
import sys

import pytest

from tests.nodes import ROOT, production_env

DATABASE = "postgres://postgres@127.0.0.1:5432/postgres"
# The same read run five times on one connection, then what the server holds prepared for that session.
SCRIPT = (
    "from django.db import connection\n"
    "for _ in range(5):\n"
    "    with connection.cursor() as cursor:\n"
    "        cursor.execute('SELECT count(*) FROM pg_class WHERE relname = %s', ['pg_type'])\n"
    "with connection.cursor() as cursor:\n"
    "    cursor.execute(\"SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%%relname = $1%%'\")\n"
    "    prepared = cursor.fetchone()[0]\n"
    "raw = connection.connection\n"
    "print('planning:', type(raw).__name__, raw.cursor_factory.__name__, raw.prepare_threshold, raw.answer_timeout, prepared)\n"
)


def _shell(tmp_path, **variables) -> subprocess.CompletedProcess:
    env = production_env(database_url=DATABASE, static_root=tmp_path, **variables)
    return subprocess.run([sys.executable, "manage.py", "shell", "-v0", "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def _planning(finished: subprocess.CompletedProcess) -> list[str]:
    line = next((line for line in finished.stdout.splitlines() if line.startswith("planning:")), None)
    assert line is not None, finished.stdout + finished.stderr[-2000:]
    return line.split()[1:]


def test_by_default_statements_are_bound_on_the_server_and_prepared_after_two_runs(tmp_path):
    assert _planning(_shell(tmp_path)) == ["BoundedConnection", "ServerBindingCursor", "2", "12.0", "1"]


def test_prepared_statements_can_be_turned_off_for_a_transaction_mode_pooler(tmp_path):
    assert _planning(_shell(tmp_path, DATABASE_PREPARE_THRESHOLD="off")) == ["BoundedConnection", "ServerBindingCursor", "None", "12.0", "0"]


def test_client_side_binding_is_djangos_own_cursor_with_nothing_prepared(tmp_path):
    finished = _shell(tmp_path, DATABASE_SERVER_SIDE_BINDING="false", DATABASE_PREPARE_THRESHOLD="off")
    assert _planning(finished) == ["BoundedConnection", "Cursor", "None", "12.0", "0"]


@pytest.mark.parametrize(
    "variables, named",
    [
        ({"DATABASE_PREPARE_THRESHOLD": "two"}, "DATABASE_PREPARE_THRESHOLD"),
        ({"DATABASE_PREPARE_THRESHOLD": "-1"}, "DATABASE_PREPARE_THRESHOLD"),
        ({"DATABASE_SERVER_SIDE_BINDING": "maybe"}, "DATABASE_SERVER_SIDE_BINDING"),
        ({"DATABASE_SERVER_SIDE_BINDING": "false"}, "DATABASE_PREPARE_THRESHOLD"),  # prepared statements need server binding
    ],
)
def test_a_bad_planning_setting_stops_start_up_naming_the_variable(variables, named, tmp_path):
    env = production_env(database_url=DATABASE, static_root=tmp_path, **variables)
    finished = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert finished.returncode != 0
    assert f"ImproperlyConfigured: {named}" in finished.stderr
