"""Idempotency-Key: a retried write gets the first attempt's answer, never a second version, request or rollback.

The issue's story runs on gunicorn (production settings) with PostgreSQL: the registration commits but the client's
connection is reset before the answer reaches it (a TCP proxy on loopback between client and server throws the
answer away), and the retry with the same key gets the original version. The command line client does the same on
its own, in a subprocess, through the same proxy.
"""

import hashlib
import http.client
import json
import os
import subprocess
import sys
import threading
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import OperationalError, connection
from django.utils import timezone

from apps.accounts.idempotency import _lock_id
from apps.accounts.models import IdempotencyRecord, TokenScope
from apps.accounts.services import api_token_create
from apps.accounts.tasks import purge_idempotency_records
from apps.approvals.models import TransitionRequest
from apps.models.permissions import Action
from apps.models.services import model_permission_grant
from apps.versions.models import ModelVersion, ProductionPointerChange
from tests.factories import promote, register_version, upload
from tests.nodes import ROOT, Answer, WebNode, collect_static, production_env
from tests.tcp_proxy import TcpProxy, database_url_via, proxy_to_test_database
from tests.validation.workers import Worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "7c1f2f0e-0b8e-4d1e-9a55-2b1f3c4d5e6f"
WEIGHTS = b"\x00weights" * 1000


def _register(api, model, *, key: str | None = KEY, files: dict[str, bytes] | None = None, metadata: dict | None = None):
    files = files if files is not None else {"model.bin": WEIGHTS}
    headers = {"Idempotency-Key": key} if key is not None else {}
    return api.post(
        f"/api/v1/models/{model.name}/versions/",
        {"files": [upload(name, data) for name, data in files.items()], "metadata": json.dumps(metadata or {"metrics": {"auc": 0.9}})},
        format="multipart",
        headers=headers,
    )


# Through the API in process (PostgreSQL)


def test_a_registration_retried_with_its_key_returns_the_original_version_and_registers_nothing_more(api_for, owner, model):
    api = api_for(owner)
    first = _register(api, model)
    retried = _register(api, model)

    assert first.status_code == retried.status_code == 201
    assert retried.json() == first.json() and retried.content == first.content
    assert retried.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert ModelVersion.objects.filter(model=model).count() == 1
    record = IdempotencyRecord.objects.get()
    assert (record.user, record.key, record.status_code, record.body.encode()) == (owner, KEY, 201, first.content)
    assert record.expires_at - record.created_at == timedelta(hours=24)


def test_the_draft_quoted_form_of_the_key_names_the_same_key(api_for, owner, model):
    api = api_for(owner)
    assert _register(api, model, key=KEY).status_code == 201
    retried = _register(api, model, key=f'"{KEY}"')
    assert retried.status_code == 201 and retried.headers["Idempotent-Replayed"] == "true"
    assert ModelVersion.objects.filter(model=model).count() == 1


@pytest.mark.parametrize(
    "change",
    [
        {"files": {"model.bin": WEIGHTS + b"!"}},
        {"files": {"renamed.bin": WEIGHTS}},
        {"metadata": {"metrics": {"auc": 0.91}}},
    ],
    ids=["other bytes", "other file name", "other metadata"],
)
def test_the_same_key_with_a_different_body_is_a_409_and_registers_nothing(api_for, owner, model, change):
    api = api_for(owner)
    assert _register(api, model).status_code == 201
    reused = _register(api, model, **change)
    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert "Idempotency-Key" in reused.json()["error"]["message"]
    assert ModelVersion.objects.filter(model=model).count() == 1


def test_the_same_key_on_another_endpoint_is_a_409(api_for, owner, model):
    api = api_for(owner)
    assert _register(api, model).status_code == 201
    reused = api.post(
        f"/api/v1/models/{model.name}/versions/1/transitions/", {"to_stage": "staging", "justification": "ok"}, format="json", headers={"Idempotency-Key": KEY}
    )
    assert reused.status_code == 409
    assert not TransitionRequest.objects.exists()


def test_keys_belong_to_their_caller(api_for, owner, reviewer, model):
    model_permission_grant(model=model, actor=owner, action=Action.REGISTER, user=reviewer)
    assert _register(api_for(owner), model).status_code == 201
    theirs = _register(api_for(reviewer), model)
    assert theirs.status_code == 201 and "Idempotent-Replayed" not in theirs.headers
    assert theirs.json()["number"] == 2 and theirs.json()["created_by"] == reviewer.username


def test_without_a_key_every_registration_is_a_new_version_and_nothing_is_kept(api_for, owner, model):
    api = api_for(owner)
    assert [_register(api, model, key=None).json()["number"] for _ in range(2)] == [1, 2]
    assert not IdempotencyRecord.objects.exists()


def test_a_refused_registration_is_not_remembered_so_the_corrected_request_may_reuse_its_key(api_for, owner, model):
    api = api_for(owner)
    refused = _register(api, model, metadata={"metrics": {"auc": "high"}})
    assert refused.status_code == 400
    assert not IdempotencyRecord.objects.exists()
    assert _register(api, model).status_code == 201
    assert ModelVersion.objects.filter(model=model).count() == 1


@pytest.mark.parametrize(
    "key, problem",
    [
        ("k" * 256, "got 256 characters"),
        ("", "got 0 characters"),
        ("clé-ünïcode", "non-ASCII"),
        ("tab\there", "control character"),
        ('"unfinished \\"', "unescaped"),
    ],
    ids=["too long", "empty", "non-ASCII", "control character", "bad quoted string"],
)
def test_a_malformed_key_is_a_400_naming_the_header_and_registers_nothing(api_for, owner, model, key, problem):
    refused = _register(api_for(owner), model, key=key)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert "Idempotency-Key" in error["fields"] and problem in error["message"]
    assert not ModelVersion.objects.exists() and not IdempotencyRecord.objects.exists()


def test_a_key_of_255_characters_is_accepted(api_for, owner, model):
    assert _register(api_for(owner), model, key="k" * 255).status_code == 201


def test_an_expired_key_names_a_new_operation(api_for, owner, model):
    api = api_for(owner)
    assert _register(api, model).json()["number"] == 1
    IdempotencyRecord.objects.update(expires_at=timezone.now() - timedelta(seconds=1))  # a day went by
    again = _register(api, model)
    assert again.status_code == 201 and again.json()["number"] == 2
    assert IdempotencyRecord.objects.get().body.encode() == again.content


def _fail_every_query_after_the_commit(marker: str):
    """A database that goes away right after the write committed: any later statement of this connection fails."""
    state = {"committed": False, "failed": []}

    def wrapper(execute, sql, params, many, context):
        if marker in sql:
            state["committed"] = "pending"
        elif state["committed"] == "pending" and not connection.in_atomic_block:
            state["committed"] = True
        if state["committed"] is True:
            state["failed"].append(sql)
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    return wrapper, state


@pytest.mark.redis  # the job's publication is followed by a statement, which must fail harmlessly
@pytest.mark.parametrize("key", [KEY, None], ids=["with a key", "without a key"])
def test_a_database_lost_right_after_the_commit_still_answers_201_with_the_version(api_for, owner, model, key):
    api = api_for(owner)
    wrapper, state = _fail_every_query_after_the_commit('INSERT INTO "versions_modelversion"')
    with connection.execute_wrapper(wrapper):
        answered = _register(api, model, key=key)
    assert state["failed"], "statements after the commit were tried and failed"
    assert answered.status_code == 201, answered.content
    version = ModelVersion.objects.get(model=model)
    assert answered.json()["id"] == str(version.id)
    if key:
        replayed = _register(api, model, key=key)
        assert replayed.content == answered.content and replayed.headers["Idempotent-Replayed"] == "true"
        assert ModelVersion.objects.filter(model=model).count() == 1


def test_a_transition_request_retried_with_its_key_is_created_once(api_for, owner, model, version):
    api = api_for(owner)
    path = f"/api/v1/models/{model.name}/versions/{version.number}/transitions/"
    body = {"to_stage": "staging", "justification": "beats v0"}
    first = api.post(path, body, format="json", headers={"Idempotency-Key": KEY})
    retried = api.post(path, body, format="json", headers={"Idempotency-Key": KEY})
    assert first.status_code == retried.status_code == 201
    assert retried.content == first.content and retried.headers["Idempotent-Replayed"] == "true"
    assert TransitionRequest.objects.count() == 1
    unkeyed = api.post(path, body, format="json")
    assert unkeyed.status_code == 400  # without the key it is a second request, refused: the version is in staging now


def test_an_approval_retried_with_its_key_answers_as_the_first_time(api_for, owner, reviewer, model, version):
    from apps.approvals.services import transition_request_create
    from apps.validation.services import validation_run

    validation_run(job_id=version.validation_jobs.get().pk)
    transition_request_create(version=version, to_stage="staging", actor=owner, justification="ready")
    pending = transition_request_create(version=version, to_stage="production", actor=owner, justification="ready")
    api = api_for(reviewer)
    path = f"/api/v1/transition-requests/{pending.pk}/approve/"
    first = api.post(path, {"comment": "fine"}, format="json", headers={"Idempotency-Key": KEY})
    retried = api.post(path, {"comment": "fine"}, format="json", headers={"Idempotency-Key": KEY})
    assert first.status_code == retried.status_code == 200, first.content
    assert first.json()["status"] == "applied" and retried.content == first.content
    assert api.post(path, {"comment": "fine"}, format="json").status_code == 400  # without the key: already decided


def test_a_rollback_retried_with_its_key_moves_the_pointer_once(api_for, owner, reviewer, model):
    first_version = register_version(model, owner)
    promote(first_version, requester=owner, approver=reviewer)
    promote(register_version(model, owner), requester=owner, approver=reviewer)
    changes = ProductionPointerChange.objects.count()
    api = api_for(owner)
    body = {"reason": "v2 misbehaves"}
    first = api.post(f"/api/v1/models/{model.name}/rollback/", body, format="json", headers={"Idempotency-Key": KEY})
    retried = api.post(f"/api/v1/models/{model.name}/rollback/", body, format="json", headers={"Idempotency-Key": KEY})
    assert first.status_code == retried.status_code == 201, first.content
    assert first.json()["version"] == 1 and retried.content == first.content
    assert ProductionPointerChange.objects.count() == changes + 1


@pytest.mark.redis
def test_the_periodic_task_on_a_worker_deletes_expired_answers_only(api_for, owner, model):
    api = api_for(owner)
    _register(api, model, key="old")
    _register(api, model, key="recent")
    IdempotencyRecord.objects.filter(key="old").update(expires_at=timezone.now() - timedelta(minutes=1))
    worker = Worker(settings.CELERY_BROKER_URL).start()
    try:
        purge_idempotency_records.delay()
        wait_for(lambda: not IdempotencyRecord.objects.filter(key="old").exists(), timeout=60)
    finally:
        log = worker.stop()
    assert "purge_idempotency_records" in log and "'deleted': 1" in log, log[-3000:]
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["recent"]


# Over HTTP: a request still in flight


def _multipart(files: dict[str, bytes], metadata: dict) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
        for name, data in files.items()
    ]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{json.dumps(metadata)}\r\n--{boundary}--\r\n'.encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _http(port: int, method: str, path: str, *, body, headers: dict, timeout: float = 30) -> Answer:
    """One request on a connection of its own; a reset connection raises OSError."""
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        client.request(method, path, body=body, headers=headers)
        response = client.getresponse()
        return Answer(response.status, {key.lower(): value for key, value in response.getheaders()}, response.read())
    finally:
        client.close()


def _advisory_lock_held(user_id: int, key: str) -> bool:
    unsigned = _lock_id(user_id, key) & (2**64 - 1)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid::bigint = %s AND objid::bigint = %s",
            [unsigned >> 32, unsigned & (2**32 - 1)],
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.postgres
def test_a_retry_while_the_first_request_is_still_uploading_is_a_409_with_retry_after(live_server, owner, model):
    _, token = api_token_create(user=owner, name="pipeline", scope=TokenScope.FULL)
    body, content_type = _multipart({"model.bin": WEIGHTS}, {"metrics": {"auc": 0.9}})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type, "Content-Length": str(len(body)), "Idempotency-Key": KEY}
    port, path = int(live_server.url.rsplit(":", 1)[1]), f"/api/v1/models/{model.name}/versions/"
    release, answers = threading.Event(), {}

    def slow_body():
        yield body[:100]
        release.wait(30)  # the rest of the body only once the test has sent the retry
        yield body[100:]

    def first_attempt():
        answers["first"] = _http(port, "POST", path, body=slow_body(), headers=headers)

    uploading = threading.Thread(target=first_attempt)
    uploading.start()
    try:
        wait_for(lambda: _advisory_lock_held(owner.pk, KEY), timeout=30)
        in_flight = _http(port, "POST", path, body=body, headers=headers)
    finally:
        release.set()
        uploading.join(30)

    assert in_flight.status == 409, in_flight.body
    assert in_flight.headers["retry-after"] == str(settings.IDEMPOTENCY_RETRY_AFTER_SECONDS)
    assert in_flight.json()["error"]["code"] == "idempotency_key_in_use"
    assert answers["first"].status == 201, answers["first"].body
    later = _http(port, "POST", path, body=body, headers=headers)
    assert later.status == 201 and later.body == answers["first"].body and later.headers["idempotent-replayed"] == "true"
    assert ModelVersion.objects.filter(model=model).count() == 1


# The story: gunicorn, PostgreSQL, an answer lost on the way back


@pytest.fixture(scope="module")
def database_proxy():
    running = proxy_to_test_database()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def web_env(database_proxy, django_db_setup, tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("idempotency")
    env = production_env(
        database_url=database_url_via(database_proxy),
        static_root=folder / "static",
        ARTIFACT_ROOT=folder / "artifacts",
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        CELERY_QUEUE=f"idempotency-{os.getpid()}",  # no worker listens: the jobs stay queued, as with the broker down
        DATABASE_CONNECT_TIMEOUT_SECONDS=2,
        DATABASE_RETRY_AFTER_SECONDS=1,
        GUNICORN_GRACEFUL_TIMEOUT=5,
    )
    collect_static(env)
    return env


@pytest.fixture
def web(web_env, database_proxy, tmp_path):
    """One node per test: a node outliving a test would keep content-type ids cached from before the database was flushed."""
    database_proxy.forward()
    node = WebNode(web_env, tmp_path / "gunicorn.log").start()
    yield node
    node.stop()


@pytest.fixture
def front(web):
    """The client's way to the gunicorn node: a proxy that can lose the node's answers."""
    running = TcpProxy(web.port).start()
    yield running
    running.stop()


@pytest.fixture
def token(owner):
    return api_token_create(user=owner, name="pipeline", scope=TokenScope.FULL)[1]


@pytest.mark.postgres
def test_a_registration_committed_but_whose_answer_was_lost_is_returned_not_repeated_on_retry(web, front, token, model):
    body, content_type = _multipart({"model.bin": WEIGHTS}, {"metrics": {"auc": 0.9}})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type, "Idempotency-Key": KEY}
    path = f"/api/v1/models/{model.name}/versions/"

    front.drop_answers(1, to=f"POST {path} ".encode())
    with pytest.raises(OSError):
        _http(front.port, "POST", path, body=body, headers=headers)
    assert front.answers_dropped == 1
    version = ModelVersion.objects.get(model=model)  # committed, though the client saw its connection reset

    retried = _http(front.port, "POST", path, body=body, headers=headers)
    assert retried.status == 201, (retried.body[:500], web.log()[-3000:])
    assert retried.headers["idempotent-replayed"] == "true"
    assert retried.json()["id"] == str(version.id) and retried.json()["number"] == 1
    assert retried.json()["artifacts"][0]["sha256"] == hashlib.sha256(WEIGHTS).hexdigest()
    assert retried.body == IdempotencyRecord.objects.get(key=KEY).body.encode()
    assert ModelVersion.objects.filter(model=model).count() == 1

    other = _http(front.port, "POST", path, body=_multipart({"model.bin": b"other"}, {})[0], headers=headers)
    assert other.status == 409  # the same key, another body
    assert ModelVersion.objects.filter(model=model).count() == 1


def _cli(port: int, token: str, *argv: str) -> subprocess.Popen:
    env = {**os.environ, "REGISTRY_URL": f"http://127.0.0.1:{port}", "REGISTRY_TOKEN": token, "REGISTRY_RETRIES": "10"}
    return subprocess.Popen(
        [sys.executable, "-m", "registry_cli", *argv], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.postgres
def test_the_cli_retries_a_registration_whose_answer_was_lost_and_gets_the_stored_version(web, front, token, model, tmp_path):
    weights = tmp_path / "model.bin"
    weights.write_bytes(WEIGHTS)

    # The registration's answer (the CLI registers through an upload session: POST .../uploads/<id>/register/).
    front.drop_answers(1, to=f"POST /api/v1/models/{model.name}/uploads/".encode(), ending=b"/register/")
    out, err = _cli(front.port, token, "register", model.name, str(weights), "--metric", "auc=0.9").communicate(timeout=120)
    assert front.answers_dropped == 1
    assert "Retrying in" in err and "had already done this" in err, err
    assert json.loads(out)["number"] == 1
    assert ModelVersion.objects.filter(model=model).count() == 1

    out, err = _cli(front.port, token, "register", model.name, str(weights)).communicate(timeout=120)
    assert json.loads(out)["number"] == 2 and "Retrying" not in err, err  # a new registration: a new key
    assert IdempotencyRecord.objects.values("key").distinct().count() == 2


@pytest.mark.postgres
def test_the_cli_retries_a_registration_answered_503_while_the_database_is_down(web, front, database_proxy, token, model, tmp_path):
    weights = tmp_path / "model.bin"
    weights.write_bytes(WEIGHTS)
    database_proxy.cut()
    cli = _cli(front.port, token, "register", model.name, str(weights))
    try:
        first_line = cli.stderr.readline()  # the CLI's report of its first attempt, printed before it waits to retry
    finally:
        database_proxy.forward()
    out, err = cli.communicate(timeout=120)
    assert cli.returncode == 0, first_line + err
    assert "answered 503" in first_line and "Retrying in" in first_line, first_line
    assert json.loads(out)["number"] == 1
    assert ModelVersion.objects.filter(model=model).count() == 1
