"""Validation on real Celery workers over Redis: the end-to-end path, a broker outage, a worker killed mid-job."""

import json
import shutil

import pytest
from django.conf import settings

from apps.validation.models import ValidationJob
from apps.validation.services import validation_sweep
from tests.factories import register_version, upload
from tests.helpers import onnx_model

from .workers import RedisServer, Worker, producing_to, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]
REDIS = settings.CELERY_BROKER_URL


def _status(job_id):
    return ValidationJob.objects.get(pk=job_id).status


def test_a_version_registered_through_the_api_is_validated_by_a_worker(api_for, owner, model):
    worker = Worker(REDIS).start()
    try:
        api = api_for(owner)
        response = api.post(
            f"/api/v1/models/{model.name}/versions/",
            {"files": [upload("model.onnx", onnx_model())], "metadata": json.dumps({"flavor": "onnx", "dependencies": {"requirements": "onnx==1.16.0"}})},
            format="multipart",
        )
        assert response.status_code == 201
        job = ValidationJob.objects.get()
        wait_for(lambda: _status(job.pk) in ("passed", "failed", "error"))
    finally:
        log = worker.stop()
    assert _status(job.pk) == "passed", log[-3000:]
    body = api.get(f"/api/v1/models/{model.name}/versions/1/").json()
    assert body["validation"]["status"] == "passed"
    assert {c["name"]: c["verdict"] for c in body["validation"]["checks"]} == {
        "integrity": "pass", "completeness": "pass", "format_inspection": "pass", "unsafe_serialization": "skip", "dependencies": "pass",
    }
    assert body["quality"] == {"status": "passed", "baseline_version": None, "rules": []}


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed, so the test cannot stop and restart a broker")
def test_nothing_is_lost_while_the_broker_is_down(owner, model, settings):
    broker = RedisServer().start()
    worker = None
    try:
        with producing_to(broker.url):
            broker.stop()
            version = register_version(model, owner, files={"w.bin": b"registered during the outage"})
            job = version.validation_jobs.get()
            assert job.status == "queued" and job.enqueued_at is None
            broker.start()
            worker = Worker(broker.url).start()
            settings.VALIDATION_RESEND_AFTER_SECONDS = 0
            assert validation_sweep()["sent"] == 1
            wait_for(lambda: _status(job.pk) == "passed")
    finally:
        log = worker.stop() if worker else ""
        broker.stop()
    job.refresh_from_db()
    assert job.status == "passed" and job.attempts == 1, log[-3000:]


def test_a_job_whose_worker_was_killed_is_redone(owner, model, settings):
    settings.VALIDATION_LEASE_SECONDS = 3
    slow = Worker(REDIS, VALIDATION_READ_BYTES_PER_SECOND=1_000_000, VALIDATION_LEASE_SECONDS=3).start()
    try:
        version = register_version(model, owner, files={"big.bin": b"\x01" * 10_000_000})
        job = version.validation_jobs.get()
        wait_for(lambda: _status(job.pk) == "running")
    finally:
        slow.kill()
    job.refresh_from_db()
    assert job.status == "running" and job.finished_at is None
    fresh = Worker(REDIS, VALIDATION_LEASE_SECONDS=3).start()
    try:
        wait_for(lambda: validation_sweep()["reclaimed"] == 1, timeout=20, interval=0.5)
        wait_for(lambda: _status(job.pk) == "passed")
    finally:
        log = fresh.stop()
    job.refresh_from_db()
    assert job.attempts == 2 and job.checks.get(name="integrity").verdict == "pass", log[-3000:]
