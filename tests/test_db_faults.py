"""A database that refuses, hangs or stalls: gunicorn (gunicorn.conf.py, production settings) answers 503 with Retry-After.

The app reaches PostgreSQL through a TCP proxy the test controls (tests/tcp_proxy.py), with short timeouts set the way
an operator would set them: by environment variables. Every request is made with a client timeout well below the
30 s a hung request used to take, so a hang fails the test instead of stalling it.
"""

import json
import subprocess
import sys

import pytest
from django.db import transaction

from apps.accounts.models import TokenScope

from apps.accounts.services import api_token_create
from apps.approvals.models import TransitionRequest
from apps.models.models import RegisteredModel
from tests.factories import register_version
from tests.tcp_proxy import database_url_via, proxy_to_test_database
from tests.nodes import ROOT, SECRET_KEY, WebNode, collect_static, production_env

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

RETRY_AFTER = "7"
CLIENT_TIMEOUT = 15  # seconds; the timeouts below bound a request to about answer + connect = 4 s


@pytest.fixture(scope="module")
def proxy():
    running = proxy_to_test_database()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def web_env(proxy, django_db_setup, tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("db-faults")
    env = production_env(
        database_url=database_url_via(proxy),
        static_root=folder / "static",
        ARTIFACT_ROOT=folder / "artifacts",
        DATABASE_CONNECT_TIMEOUT_SECONDS=2,
        DATABASE_STATEMENT_TIMEOUT_SECONDS=1,
        DATABASE_ANSWER_TIMEOUT_SECONDS=2,
        DATABASE_RETRY_AFTER_SECONDS=RETRY_AFTER,
        GUNICORN_GRACEFUL_TIMEOUT=5,
    )
    collect_static(env)
    return env


@pytest.fixture
def web(web_env, tmp_path):
    """A gunicorn node whose DATABASE_URL points at the proxy; persistent connections and health checks as in production.

    One per test: a node outliving a test would keep content-type ids cached from before the test database was flushed.
    """
    node = WebNode(web_env, tmp_path / "gunicorn.log").start()
    yield node
    node.stop()


@pytest.fixture
def caller(web, proxy, model, owner, client, settings):
    """The owner's API token and a logged-in session cookie, both valid on the gunicorn node (same SECRET_KEY)."""
    settings.SECRET_KEY = SECRET_KEY
    client.force_login(owner)
    _, secret = api_token_create(user=owner, name="faults", scope=TokenScope.FULL)
    proxy.forward()
    yield {"api": {"Authorization": f"Bearer {secret}"}, "page": {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}}
    proxy.forward()  # whatever the test left the proxy in, the next one starts with a working database


def assert_database_unavailable_json(answer):
    assert answer.status == 503, answer.body[:500]
    assert answer.headers["retry-after"] == RETRY_AFTER
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"]["code"] == "database_unavailable"


def assert_database_unavailable_page(answer):
    assert answer.status == 503, answer.body[:500]
    assert answer.headers["retry-after"] == RETRY_AFTER
    assert answer.headers["content-type"].startswith("text/html")
    assert b"Temporarily unavailable" in answer.body


def assert_serves(web, caller, model):
    assert web.request("GET", f"/api/v1/models/{model.name}/", headers=caller["api"], timeout=CLIENT_TIMEOUT).status == 200
    assert web.request("GET", f"/models/{model.name}/", headers=caller["page"], timeout=CLIENT_TIMEOUT).status == 200


def create_model_through_the_api(web, caller, name: str):
    body = json.dumps({"name": name}).encode()
    return web.request("POST", "/api/v1/models/", body=body, headers={**caller["api"], "Content-Type": "application/json"}, timeout=CLIENT_TIMEOUT)


@pytest.mark.parametrize("fault", ["cut", "hang"])
def test_a_database_that_refuses_or_never_answers_gets_503_with_retry_after_and_the_node_recovers(web, proxy, caller, model, fault):
    assert_serves(web, caller, model)  # persistent connections now exist on the node's threads: they meet the fault first
    getattr(proxy, fault)()

    assert_database_unavailable_json(web.request("GET", f"/api/v1/models/{model.name}/", headers=caller["api"], timeout=CLIENT_TIMEOUT))
    assert_database_unavailable_json(create_model_through_the_api(web, caller, "written-during-the-fault"))
    assert_database_unavailable_page(web.request("GET", f"/models/{model.name}/", headers=caller["page"], timeout=CLIENT_TIMEOUT))
    assert_database_unavailable_page(web.request("GET", "/healthz", timeout=CLIENT_TIMEOUT))

    proxy.forward()
    assert_serves(web, caller, model)
    assert not RegisteredModel.objects.filter(name="written-during-the-fault").exists()


def test_a_statement_stuck_behind_a_lock_is_cancelled_by_the_server_and_answers_503(web, caller, model, owner):
    version = register_version(model, owner)
    body = json.dumps({"to_stage": "staging", "justification": "ready"}).encode()
    with transaction.atomic():
        RegisteredModel.objects.select_for_update().get(pk=model.pk)  # what a long-running writer would hold
        answer = web.request(
            "POST", f"/api/v1/models/{model.name}/versions/{version.number}/transitions/",
            body=body, headers={**caller["api"], "Content-Type": "application/json"}, timeout=CLIENT_TIMEOUT,
        )
    assert_database_unavailable_json(answer)
    assert "statement timeout" in web.log()
    assert not TransitionRequest.objects.exists()
    retried = web.request(
        "POST", f"/api/v1/models/{model.name}/versions/{version.number}/transitions/",
        body=body, headers={**caller["api"], "Content-Type": "application/json"}, timeout=CLIENT_TIMEOUT,
    )
    assert retried.status == 201, (retried.body[:500], web.log()[-4000:])


@pytest.mark.parametrize(
    "variables, named",
    [
        ({"DATABASE_STATEMENT_TIMEOUT_SECONDS": "ten"}, "DATABASE_STATEMENT_TIMEOUT_SECONDS"),
        ({"DATABASE_CONNECT_TIMEOUT_SECONDS": "1"}, "DATABASE_CONNECT_TIMEOUT_SECONDS"),
        ({"DATABASE_KEEPALIVES_IDLE_SECONDS": "-5"}, "DATABASE_KEEPALIVES_IDLE_SECONDS"),
        ({"DATABASE_STATEMENT_TIMEOUT_SECONDS": "10", "DATABASE_ANSWER_TIMEOUT_SECONDS": "5"}, "DATABASE_ANSWER_TIMEOUT_SECONDS"),
    ],
)
def test_a_bad_database_timeout_stops_start_up_naming_the_variable(variables, named, tmp_path):
    env = production_env(database_url="postgres://postgres@127.0.0.1:5432/postgres", static_root=tmp_path, **variables)
    finished = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert finished.returncode != 0
    assert f"ImproperlyConfigured: {named}" in finished.stderr


def test_the_timeouts_reach_the_server_and_the_connection(tmp_path):
    env = production_env(
        database_url="postgres://postgres@127.0.0.1:5432/postgres", static_root=tmp_path,
        DATABASE_STATEMENT_TIMEOUT_SECONDS="2.5", DATABASE_KEEPALIVES_IDLE_SECONDS="40",
    )
    script = (
        "from django.db import connection\n"
        "with connection.cursor() as cursor:\n"
        "    cursor.execute('SHOW statement_timeout')\n"
        "    print('timeouts:', cursor.fetchone()[0], connection.connection.info.get_parameters()['keepalives_idle'],"
        " connection.connection.answer_timeout, connection.connection.info.get_parameters()['connect_timeout'])\n"
    )
    finished = subprocess.run([sys.executable, "manage.py", "shell", "-v0", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    line = next((line for line in finished.stdout.splitlines() if line.startswith("timeouts:")), finished.stdout + finished.stderr[-2000:])
    assert line.split()[1:] == ["2500ms", "40", "4.5", "5"], line
