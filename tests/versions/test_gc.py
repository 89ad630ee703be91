"""The blob garbage collector never deletes a blob a version uses, even while that version is still being registered.

The race from issue 9, replayed on PostgreSQL with real threads: a registration finds its blob already stored (an
orphan of an earlier failed registration, older than the grace period) and decides to reuse it; before it commits,
`gc_artifact_blobs` runs. The registration is held between its decision and its commit by a row lock the test
takes on the model (the registration's transaction locks that row first), so no hook in the code is needed.
"""

import io
import json
import os
import threading
import time
import urllib.request
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.test import override_settings
from django.utils import timezone

from apps.models.models import RegisteredModel
from apps.validation.models import ValidationJob
from apps.validation.services import validation_run
from apps.versions.blobs import artifact_storage, blob_key, blob_put, blob_reserve
from apps.versions.models import Artifact, BlobReservation, ModelVersion
from tests.factories import sha256, streamed, upload
from tests.validation.workers import wait_for
from tests.s3 import moto_endpoint_fixture, s3_fixture  # noqa: F401  (fixtures: a moto S3 server and a fresh bucket)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ORPHAN = b"weights an earlier registration stored before it failed " * 64


@pytest.fixture(autouse=True)
def spool_in_tmp_path(settings, tmp_path):
    """Uploads spool in the test's own folder, which is also the one the cleanup sweeps."""
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)


@pytest.fixture(params=["local", "s3"])
def store(request):
    """The artifact store: the test's own folder on local disk, or a fresh bucket on moto's S3 server."""
    if request.param == "s3":
        target = request.getfixturevalue("s3")
        with override_settings(STORAGES=target.storages()):
            yield request.param
    else:
        yield request.param


def _stored(digest: str) -> bool:
    return artifact_storage().exists(blob_key(digest))


def _orphan_older_than_the_grace_period(store: str) -> list[str]:
    """Store ORPHAN with no version referencing it; returns the gc arguments under which it counts as collectable."""
    assert blob_put(sha256=sha256(ORPHAN), content=ContentFile(ORPHAN))
    if store == "local":
        past = time.time() - 3 * 3600
        os.utime(artifact_storage().path(blob_key(sha256(ORPHAN))), (past, past))
        return ["--grace-minutes", "60"]
    return ["--grace-minutes", "0"]  # S3 keeps its own LastModified; a zero grace makes the orphan old enough


def _in_own_connection(work):
    """Run `work()` in a thread of its own, so on a database connection of its own (autocommit); returns its result."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = work()
        except BaseException as exc:  # re-raised below, in the test's thread
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), f"{work} did not finish"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _gc(*args: str) -> str:
    """`manage.py gc_artifact_blobs` on a connection of its own, as a cron job would run it."""
    out = io.StringIO()
    _in_own_connection(lambda: call_command("gc_artifact_blobs", *args, stdout=out))
    return out.getvalue()


def _register_in_thread(api, model, data: bytes) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def run():
        try:
            result["response"] = api.post(
                f"/api/v1/models/{model.name}/versions/",
                {"files": [upload("weights.bin", data)], "metadata": json.dumps({"artifacts": [{"path": "weights.bin", "sha256": sha256(data)}]})},
                format="multipart",
            )
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def _another_session_waits_for_a_lock() -> bool:
    """The registration's transaction is blocked on the model row this test holds."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # activity is otherwise read once per transaction, and this one is open
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0] > 0


def _wait_until_blocked(registration: threading.Thread, result: dict) -> None:
    wait_for(lambda: not registration.is_alive() or _another_session_waits_for_a_lock(), timeout=60)
    assert registration.is_alive(), f"the registration finished instead of waiting for the model row: {result}"


def _downloaded(api, model, store: str) -> bytes:
    response = api.get(f"/api/v1/models/{model.name}/versions/1/artifacts/weights.bin")
    if store == "s3":
        assert response.status_code == 302, response.content
        with urllib.request.urlopen(response["Location"], timeout=60) as fetched:
            return fetched.read()
    assert response.status_code == 200
    return streamed(response)


def test_gc_running_between_a_reuse_decision_and_the_commit_keeps_the_blob(api_for, owner, model, store):
    gc_args = _orphan_older_than_the_grace_period(store)
    digest = sha256(ORPHAN)
    api = api_for(owner)
    with transaction.atomic():
        RegisteredModel.objects.select_for_update().get(pk=model.pk)  # the registration will wait here, after its reuse decision
        registration, result = _register_in_thread(api, model, ORPHAN)
        _wait_until_blocked(registration, result)
        assert BlobReservation.objects.filter(sha256=digest).count() == 1, "reserved, in a committed transaction, before deciding"
        if store == "local":
            modified = artifact_storage().get_modified_time(blob_key(digest))
            assert modified < timezone.now() - timedelta(hours=2), "the registration reused the orphan instead of storing it again"

        output = _gc(*gc_args)

        assert "deleted 0 orphan blob(s)" in output
        assert _stored(digest), "the collector deleted a blob a registration had decided to reuse"
    registration.join(120)

    response = result["response"]
    assert response.status_code == 201, response.content
    assert Artifact.objects.get(version__model=model).sha256 == digest
    assert not BlobReservation.objects.exists(), "a committed registration releases its reservations"
    assert "deleted 0 orphan blob(s)" in _gc(*gc_args), "now the artifact row keeps it"
    job = validation_run(job_id=ValidationJob.objects.get(version__model=model).pk)
    assert job.status == "passed", job.error
    assert _downloaded(api, model, store) == ORPHAN


def test_a_registration_that_outlived_its_reservation_does_not_commit_and_a_retry_stores_the_blob_again(api_for, owner, model, store):
    gc_args = _orphan_older_than_the_grace_period(store)
    digest = sha256(ORPHAN)
    api = api_for(owner)
    api.raise_request_exception = False
    with transaction.atomic():
        RegisteredModel.objects.select_for_update().get(pk=model.pk)
        registration, result = _register_in_thread(api, model, ORPHAN)
        _wait_until_blocked(registration, result)
        # Time passes beyond BLOB_RESERVATION_SECONDS while the registration is stuck.
        _in_own_connection(lambda: BlobReservation.objects.filter(sha256=digest).update(expires_at=timezone.now() - timedelta(seconds=1)))
        assert "deleted 1 orphan blob(s)" in _gc(*gc_args)
    registration.join(120)

    response = result["response"]
    assert response.status_code == 503 and response.json()["error"]["code"] == "storage_unavailable", response.content
    assert not ModelVersion.objects.filter(model=model).exists(), "no version may point at a blob that was collected"
    model.refresh_from_db()
    assert model.last_version_number == 0
    assert not _stored(digest)

    retry = api.post(
        f"/api/v1/models/{model.name}/versions/",
        {"files": [upload("weights.bin", ORPHAN)], "metadata": json.dumps({"artifacts": [{"path": "weights.bin", "sha256": digest}]})},
        format="multipart",
    )
    assert retry.status_code == 201, retry.content
    assert _stored(digest) and _downloaded(api, model, store) == ORPHAN


def test_gc_keeps_reserved_and_referenced_blobs_and_deletes_the_rest(api_for, owner, model):
    used, reserved, unused = b"used by v1", b"reserved by a registration in flight", b"nobody's"
    assert api_for(owner).post(
        f"/api/v1/models/{model.name}/versions/", {"files": [upload("used.bin", used)], "metadata": "{}"}, format="multipart"
    ).status_code == 201
    for data in (reserved, unused):
        blob_put(sha256=sha256(data), content=ContentFile(data))
    blob_reserve(digests=[sha256(reserved)])
    expired = blob_reserve(digests=[sha256(unused)])
    BlobReservation.objects.filter(pk__in=expired).update(expires_at=timezone.now() - timedelta(minutes=1))

    assert "would delete 1 orphan blob(s)" in _gc("--grace-minutes", "0", "--dry-run")
    assert "deleted 1 orphan blob(s)" in _gc("--grace-minutes", "0")

    assert _stored(sha256(used)) and _stored(sha256(reserved))
    assert not _stored(sha256(unused))
    assert list(BlobReservation.objects.values_list("sha256", flat=True)) == [sha256(reserved)], "expired reservations are dropped"
