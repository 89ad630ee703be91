"""A real worker rides out a restart of its real redis-server, even while it holds a message it has not acknowledged.

Before registry_site.broker.RedisTransport, the worker stopped with "Unrecoverable error: AttributeError('NoneType'
object has no attribute 'hostname')" when Redis went away while it held an unacknowledged message (here: a webhook
retry waiting for its backoff), and everything registered during the outage stayed queued for good.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from apps.events.models import Delivery, DeliveryStatus, EventType
from apps.events.services import delivery_sweep, event_emit, webhook_create
from apps.validation.models import JobStatus, ValidationJob
from apps.validation.services import validation_sweep
from tests.events.receiver import Receiver, Reply
from tests.factories import register_version

from .workers import ROOT, Log, RedisServer, Worker, producing_to, wait_for

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed, so the test cannot restart a broker"),
]
OUTAGE_VERSIONS = 5
RETRY_SECONDS = 10


def _statuses(job_ids) -> set[str]:
    return set(ValidationJob.objects.filter(pk__in=job_ids).values_list("status", flat=True))


def test_a_worker_holding_an_unacknowledged_retry_survives_a_broker_restart_and_then_validates_and_delivers_everything(
    owner, model, settings
):
    settings.WEBHOOK_ALLOWED_INTERNAL_HOSTS = ["127.0.0.1"]
    settings.VALIDATION_RESEND_AFTER_SECONDS = settings.WEBHOOK_RESEND_AFTER_SECONDS = 0
    receiver = Receiver(Reply(500, b"deployer busy")).start()
    broker = RedisServer().start()
    worker = Worker(broker.url, WEBHOOK_ALLOWED_INTERNAL_HOSTS="127.0.0.1", WEBHOOK_RETRY_BASE_SECONDS=RETRY_SECONDS).start()
    log = Log(worker.process)

    def worker_died() -> bool:
        return worker.process.poll() is not None

    try:
        with producing_to(broker.url):
            webhook_create(model=model, actor=owner, url=receiver.url(), secret="test-secret-0123456789abcdef")
            delivery = event_emit(model=model, event_type=EventType.PRODUCTION_CHANGED, payload={"version": 1}, actor=owner).deliveries.get()
            # The receiver answers 500; the worker sends the retry back through the broker with a countdown and, being
            # the only consumer, takes it and holds it unacknowledged until the countdown is over.
            wait_for(lambda: log.count("deliver_webhook[", "] received") >= 2, timeout=30)

            broker.process.send_signal(signal.SIGKILL)
            broker.process.wait(10)
            wait_for(lambda: log.count("Connection to broker lost"), timeout=30)
            during = [register_version(model, owner, files={"w.bin": b"outage %d" % i}).validation_jobs.get().pk for i in range(OUTAGE_VERSIONS)]
            assert _statuses(during) == {JobStatus.QUEUED}
            assert not ValidationJob.objects.filter(pk__in=during, enqueued_at__isnull=False).exists()

            broker.start()  # the same port, empty: queues and the unacked index are gone, as after a crash without persistence
            wait_for(lambda: worker_died() or log.count("Connected to") >= 2, timeout=30)
            wait_for(lambda: worker_died() or validation_sweep()["sent"] == OUTAGE_VERSIONS, timeout=30, interval=1)
            wait_for(lambda: worker_died() or _statuses(during) == {JobStatus.PASSED}, timeout=90, interval=0.5)
            # The retry the worker held died with Redis; once it is due, the webhook sweep sends it again.
            wait_for(lambda: worker_died() or delivery_sweep()["sent"] == 1, timeout=RETRY_SECONDS + 30, interval=1)
            wait_for(lambda: worker_died() or Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.DELIVERED, timeout=30)
            alive = not worker_died()
    finally:
        worker.stop()
        log.reader.join(10)
        broker.stop()
        receiver.stop()
    assert alive and "Unrecoverable error" not in log.text(), log.text()[-5000:]
    assert _statuses(during) == {JobStatus.PASSED}
    assert set(ValidationJob.objects.filter(pk__in=during).values_list("attempts", flat=True)) == {1}
    delivery.refresh_from_db()
    assert delivery.attempts == 2 and [r.headers["X-Registry-Event-Id"] for r in receiver.requests] == [str(delivery.event_id)] * 2


def _pids_of_children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    children.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return children


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.redis
def test_scripts_supervise_starts_a_worker_again_after_it_is_killed_and_stops_it_on_term(owner, model):
    env = Worker(django_settings.CELERY_BROKER_URL).env
    command = [str(ROOT / "scripts" / "supervise"), sys.executable, "-m", "celery", "-A", "registry_site", "worker", "--concurrency=1",
               "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat", "-Q", env["CELERY_QUEUE"]]
    supervisor = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    log = Log(supervisor)

    def worker_pids() -> list[int]:
        return [int(pid) for pid in re.findall(r"supervise: started \S+ \(pid (\d+)\)", log.text())]

    try:
        wait_for(lambda: log.count("ready."), timeout=60)
        (first,) = worker_pids()
        for pid in [*_pids_of_children(first), first]:  # a crash: the worker and its pool child die at once
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: len(worker_pids()) == 2 and log.count("ready.") == 2, timeout=60)
        second = worker_pids()[1]

        job = register_version(model, owner, files={"w.bin": b"after the crash"}).validation_jobs.get()
        wait_for(lambda: _statuses([job.pk]) == {JobStatus.PASSED}, timeout=60)

        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(30) == 0
        wait_for(lambda: _gone(second), timeout=30)
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
            supervisor.wait(10)
        log.reader.join(10)
    assert second != first and "exited with status" in log.text(), log.text()[-3000:]
