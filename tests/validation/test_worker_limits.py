"""Time limits and attempt counts on real Celery workers over Redis: a hostile header fails promptly, a job past the
hard limit (the job's own, or Celery's soft or hard one) ends `error` with the reason, a job whose worker keeps dying
is given up after VALIDATION_MAX_ATTEMPTS, and a pool child whose parent died does not linger."""

import json
import os
import signal

import pytest
from django.conf import settings

from apps.validation.models import FINISHED, ValidationJob
from apps.validation.services import validation_sweep
from tests.factories import register_version, upload
from tests.helpers import eighty_thousand_dimensions

from .workers import Worker, alive, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]
REDIS = settings.CELERY_BROKER_URL
SLOW_READS = {"VALIDATION_READ_BYTES_PER_SECOND": 1_000_000}  # a 5 MB artifact then takes integrity about 5 s to read


def _job(job_id) -> ValidationJob:
    return ValidationJob.objects.get(pk=job_id)


def _finished(job_id) -> bool:
    return _job(job_id).status in FINISHED


def _slow_job(model, owner) -> ValidationJob:
    return register_version(model, owner, files={"big.dat": b"\x01" * 5_000_000}).validation_jobs.get()


def test_an_80000_dimension_header_registered_through_the_api_fails_on_the_worker(api_for, owner, model):
    worker = Worker(REDIS).start()
    try:
        api = api_for(owner)
        response = api.post(
            f"/api/v1/models/{model.name}/versions/",
            {"files": [upload("model.safetensors", eighty_thousand_dimensions())], "metadata": json.dumps({"flavor": "pytorch"})},
            format="multipart",
        )
        assert response.status_code == 201, response.content[:500]
        job = ValidationJob.objects.get()
        wait_for(lambda: _finished(job.pk), timeout=60)
    finally:
        log = worker.stop()
    job.refresh_from_db()
    inspection = job.checks.get(name="format_inspection")
    assert job.status == "failed" and inspection.verdict == "fail", log[-3000:]
    assert "tensor 'w' has 80000 dimensions; at most 64 are allowed" in inspection.summary
    validation = api.get(f"/api/v1/models/{model.name}/versions/1/").json()["validation"]
    assert validation["status"] == "failed" and validation["attempts"] == 1 and validation["error"] == ""


def test_a_job_past_its_hard_limit_ends_in_error_with_the_reason_and_is_not_sent_again(api_for, web_for, owner, model, settings):
    settings.VALIDATION_LEASE_SECONDS = 1
    settings.VALIDATION_RESEND_AFTER_SECONDS = 0
    worker = Worker(REDIS, VALIDATION_JOB_HARD_LIMIT_SECONDS=1, **SLOW_READS).start()
    try:
        job = _slow_job(model, owner)
        wait_for(lambda: _finished(job.pk))
        assert validation_sweep() == {"reclaimed": 0, "sent": 0, "gave_up": 0}
    finally:
        log = worker.stop()
    job.refresh_from_db()
    assert job.status == "error" and job.attempts == 1, log[-3000:]
    assert job.error == "the job ran past its hard limit of 1 s during integrity (attempt 1)"
    assert [(c.name, c.verdict) for c in job.checks.all()] == [("integrity", "error")]
    validation = api_for(owner).get(f"/api/v1/models/{model.name}/versions/1/").json()["validation"]
    assert (validation["status"], validation["attempts"], validation["error"]) == ("error", 1, job.error)
    page = web_for(owner).get(f"/models/{model.name}/versions/1/").content.decode()
    assert "Attempt <span data-attempts>1</span> of 3" in page and job.error in page


def test_celerys_soft_time_limit_is_recorded_as_an_error_not_a_crash(owner, model):
    worker = Worker(REDIS, VALIDATION_TASK_SOFT_TIME_LIMIT=1, VALIDATION_TASK_TIME_LIMIT=120, **SLOW_READS).start()
    try:
        job = _slow_job(model, owner)
        wait_for(lambda: _finished(job.pk))
    finally:
        log = worker.stop()
    job.refresh_from_db()
    assert job.status == "error" and job.attempts == 1, log[-3000:]
    assert job.error == "the job ran past the worker's soft time limit of 1 s during integrity (attempt 1)"
    assert job.checks.get(name="integrity").verdict == "error"
    assert "Soft time limit (1s) exceeded" in log


def test_a_job_whose_process_hangs_is_killed_at_celerys_hard_time_limit_and_the_worker_carries_on(owner, model):
    worker = Worker(REDIS, VALIDATION_TASK_SOFT_TIME_LIMIT=3, VALIDATION_TASK_TIME_LIMIT=5, **SLOW_READS).start()
    try:
        job = _slow_job(model, owner)
        wait_for(lambda: _job(job.pk).status == "running")
        for child in worker.pool_children():  # hung as in uninterruptible I/O: the soft limit's signal goes unanswered
            os.kill(child, signal.SIGSTOP)
        wait_for(lambda: _finished(job.pk))
        assert worker.process.poll() is None
        small = register_version(model, owner, files={"small.dat": b"small"}).validation_jobs.get()
        wait_for(lambda: _finished(small.pk))
    finally:
        log = worker.stop()
    job.refresh_from_db()
    assert job.status == "error" and job.attempts == 1, log[-3000:]
    assert job.error == "the worker's hard time limit of 5 s killed the job's process (attempt 1)"
    assert "Hard time limit (5s) exceeded" in log
    assert _job(small.pk).status == "passed"


def test_a_job_whose_worker_keeps_dying_is_given_up_after_the_maximum_attempts(api_for, owner, model, settings):
    settings.VALIDATION_LEASE_SECONDS = 3
    settings.VALIDATION_RESEND_AFTER_SECONDS = 0
    settings.VALIDATION_MAX_ATTEMPTS = 2
    job = _slow_job(model, owner)
    for attempt in (1, 2):
        worker = Worker(REDIS, VALIDATION_LEASE_SECONDS=3, VALIDATION_MAX_ATTEMPTS=2, **SLOW_READS).start()
        try:
            wait_for(lambda: _job(job.pk).status == "running" and _job(job.pk).attempts == attempt)
        finally:
            worker.kill()
        if attempt == 1:
            wait_for(lambda: validation_sweep()["reclaimed"] == 1, timeout=30, interval=0.5)
    wait_for(lambda: validation_sweep()["gave_up"] == 1, timeout=30, interval=0.5)
    job.refresh_from_db()
    assert job.status == "error" and job.attempts == 2
    assert job.error == "gave up after 2 attempts: the worker stopped during the attempt (no heartbeat for 3 s)"
    assert validation_sweep() == {"reclaimed": 0, "sent": 0, "gave_up": 0}
    validation = api_for(owner).get(f"/api/v1/models/{model.name}/versions/1/").json()["validation"]
    assert (validation["status"], validation["attempts"], validation["error"]) == ("error", 2, job.error)


def test_a_pool_child_exits_when_its_worker_is_killed(owner, model):
    worker = Worker(REDIS).start()
    try:
        children = wait_for(worker.pool_children)
        worker.kill_main_process()
        wait_for(lambda: not any(alive(pid) for pid in children), timeout=30)
    finally:
        worker.kill()
