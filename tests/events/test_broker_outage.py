"""A broker outage costs requests nothing: stage lookups never reach the broker, a request's transaction makes at most
one short publish attempt however many messages it has, and after a failure the process skips publishing for a pause.

The broker here is a real TCP listener that accepts each connection and drops it at once (a broker that is there but
broken), counting the connections: what reaches it is exactly what the producer tried.
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from apps.events.models import Delivery, Event
from apps.validation.models import ValidationJob
from registry_site.broker import publish_pause
from tests.factories import promote, register_version, upload
from tests.validation.workers import producing_to, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
REDIS = django_settings.CELERY_BROKER_URL


class BrokenBroker:
    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return  # closed
            self.connections += 1
            connection.close()

    def start(self) -> "BrokenBroker":
        self.thread.start()
        return self

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone leaves join() its 5 s
        self.listener.close()
        self.thread.join(5)


@pytest.fixture
def broken_broker():
    broker = BrokenBroker().start()
    with producing_to(broker.url):
        yield broker
    broker.close()


@pytest.fixture
def pause(settings):
    settings.BROKER_PUBLISH_PAUSE_SECONDS = 30
    publish_pause.succeeded()
    yield publish_pause
    publish_pause.succeeded()  # the next test starts with publishing open, as a fresh process would


def _register_through_the_api(api, model, name: str) -> int:
    response = api.post(
        f"/api/v1/models/{model.name}/versions/",
        {"files": [upload(name, b"weights of " + name.encode())], "metadata": json.dumps({"flavor": "onnx"})},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    return response.json()["number"]


def test_stage_lookups_never_connect_to_the_broker(api_for, owner, reviewer, model):
    promote(register_version(model, owner), requester=owner, approver=reviewer)
    api = api_for(reviewer)
    broker = BrokenBroker().start()
    try:
        with producing_to(broker.url):
            for _ in range(5):
                response = api.get(f"/api/v1/models/{model.name}/stages/production/")
                assert response.status_code == 200 and response.json()["number"] == 1
            assert broker.connections == 0
            _register_through_the_api(api_for(owner), model, "model.onnx")
            assert broker.connections > 0  # the producer does go to this broker: the lookups just never needed it
    finally:
        broker.close()


@pytest.mark.redis
def test_a_rollback_with_the_broker_down_makes_one_attempt_for_its_three_events(api_for, owner, reviewer, model, webhook, pause, broken_broker):
    with producing_to(REDIS):  # the working broker, for the set-up
        promote(register_version(model, owner, files={"a.bin": b"v1"}), requester=owner, approver=reviewer)
        promote(register_version(model, owner, files={"a.bin": b"v2"}), requester=owner, approver=reviewer)
    events_before = set(Event.objects.values_list("pk", flat=True))

    response = api_for(owner).post(f"/api/v1/models/{model.name}/rollback/", {"to_version": 1, "reason": "v2 misbehaves"}, format="json")

    assert response.status_code == 201, response.content
    new_events = Event.objects.exclude(pk__in=events_before)
    assert new_events.count() == 3
    waiting = Delivery.objects.filter(event__in=new_events)
    assert waiting.count() == 3 and not waiting.filter(message_due_at__isnull=False).exists()  # all three left for the sweep
    rollback_attempt = broken_broker.connections
    assert rollback_attempt > 0

    pause.succeeded()  # as once the pause has run out: a transaction with a single message, for comparison
    _register_through_the_api(api_for(owner), model, "single.onnx")
    assert broken_broker.connections == 2 * rollback_attempt  # three messages cost what one does: one attempt


def test_after_a_failed_publish_the_process_skips_publishing_for_the_pause(api_for, owner, model, settings, pause, broken_broker):
    settings.BROKER_PUBLISH_PAUSE_SECONDS = 3
    api = api_for(owner)
    _register_through_the_api(api, model, "first.onnx")
    one_attempt = broken_broker.connections
    assert one_attempt > 0 and pause.paused

    _register_through_the_api(api, model, "second.onnx")
    assert broken_broker.connections == one_attempt  # skipped: no connection, no timeout

    wait_for(lambda: not pause.paused, timeout=10, interval=0.1)
    _register_through_the_api(api, model, "third.onnx")
    assert broken_broker.connections == 2 * one_attempt
    assert list(ValidationJob.objects.values_list("status", "enqueued_at")) == [("queued", None)] * 3  # all three wait for the sweep


@pytest.mark.parametrize(
    "variables, named",
    [
        ({"WEBHOOK_TIMEOUT_SECONDS": "0"}, "WEBHOOK_TIMEOUT_SECONDS"),
        ({"WEBHOOK_TIMEOUT_SECONDS": "ten"}, "WEBHOOK_TIMEOUT_SECONDS"),
        ({"WEBHOOK_TIMEOUT_SECONDS": "120", "WEBHOOK_LEASE_SECONDS": "120"}, "WEBHOOK_TIMEOUT_SECONDS"),
        ({"BROKER_SOCKET_TIMEOUT_SECONDS": "1"}, "BROKER_SOCKET_TIMEOUT_SECONDS"),
        ({"BROKER_PUBLISH_PAUSE_SECONDS": "-1"}, "BROKER_PUBLISH_PAUSE_SECONDS"),
    ],
)
def test_a_bad_broker_or_webhook_timeout_stops_start_up_naming_the_variable(variables, named):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "registry_site.settings.test", **variables}
    finished = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert finished.returncode != 0
    assert f"ImproperlyConfigured: {named}" in finished.stderr
