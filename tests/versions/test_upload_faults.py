"""Interrupted uploads leave nothing behind: a worker killed mid-body, a full disk.

The server is a real gunicorn on loopback (test settings, the test's PostgreSQL database and artifact folder),
spooling uploads into a folder of the test's own through TMPDIR. The full disk is a real one: a 5 MB tmpfs
mounted for the test (root only; without it these tests skip, or fail under CI=true).
"""

import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client

from apps.accounts.models import TokenScope

from apps.accounts.services import api_token_create
from apps.versions.models import Artifact, ModelVersion
from apps.versions.spool import SPOOL_GLOB
from apps.versions.tasks import collect_artifact_garbage
from tests.factories import sha256, streamed, upload
from tests.upload_spool import spool_fixture  # noqa: F401  (the `spool` fixture: uploads spool there, for the server and the cleanup)
from tests.validation.workers import Log, Worker, _processes, free_port, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
MiB = 1024 * 1024
SEVEN_HOURS = 7 * 3600  # past the default UPLOAD_SPOOL_GRACE_MINUTES (6 h)


def _command_line(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def _workers(pid: int) -> list[int]:
    """The gunicorn master's worker processes: its children forked with its own command line. gunicorn.conf.py's spool
    sweep (`manage.py gc_artifact_blobs --spool-only`, run by the master when it is ready) is a child too, for a while."""
    master = _command_line(pid)
    return [child for child, parent in _processes() if parent == pid and _command_line(child) == master]


class Gunicorn:
    """gunicorn (1 gthread worker) serving this test's database and artifact folder; uploads spool in `spool`."""

    def __init__(self, spool: Path, log: Path):
        self.spool, self.log_path, self.port = spool, log, free_port()
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port

    def start(self) -> "Gunicorn":
        db = connection.settings_dict
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "registry_site.settings.test",
            "TEST_DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "ARTIFACT_ROOT": str(settings.ARTIFACT_ROOT),
            "TMPDIR": str(self.spool),  # the test settings spool into the system temp dir
            "CELERY_BROKER_URL": "memory://localhost/",  # validation jobs are recorded, not sent
        }
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).with_name("gunicorn")), "--bind", f"127.0.0.1:{self.port}", "--workers", "1",
                 "--worker-class", "gthread", "--threads", "2", "--timeout", "120", "registry_site.wsgi:application"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        def answers() -> bool:
            assert self.process.poll() is None, f"gunicorn exited: {self.log()}"
            if len(_workers(self.process.pid)) != 1:
                return False
            try:
                return self.request("GET", "/healthz")[0] == 200
            except OSError:
                return False

        wait_for(answers, timeout=60)

    def worker(self) -> int:
        (pid,) = _workers(self.process.pid)
        return pid

    def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection(*self.address, timeout=60)
        try:
            conn.request(method, path, body=body or None, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class StreamingUpload:
    """A registration sent over a raw connection a piece at a time, the way a slow client's 1 GB upload arrives."""

    BLOCK = os.urandom(MiB)

    def __init__(self, server: Gunicorn, token: str, model_name: str, *, mib: int):
        self.size = mib * MiB
        self.boundary = uuid.uuid4().hex
        self.digest = hashlib.sha256(self.BLOCK * mib).hexdigest()
        metadata = json.dumps({"artifacts": [{"path": "weights.bin", "sha256": self.digest}]})
        self.head = (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{metadata}\r\n'
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="files"; filename="weights.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()
        self.sent = 0
        self.conn = http.client.HTTPConnection(*server.address, timeout=120)
        self.conn.putrequest("POST", f"/api/v1/models/{model_name}/versions/")
        self.conn.putheader("Authorization", f"Bearer {token}")
        self.conn.putheader("Content-Type", f"multipart/form-data; boundary={self.boundary}")
        self.conn.putheader("Content-Length", str(len(self.head) + self.size + len(self.tail)))
        self.conn.endheaders()
        self.conn.send(self.head)

    def send(self, mib: int) -> None:
        for _ in range(mib):
            self.conn.send(self.BLOCK)
            self.sent += MiB

    def finish(self) -> tuple[int, dict]:
        self.send((self.size - self.sent) // MiB)
        self.conn.send(self.tail)
        response = self.conn.getresponse()
        body = json.loads(response.read())
        self.conn.close()
        return response.status, body


def _spool_files(spool: Path) -> list[Path]:
    return sorted(spool.glob(SPOOL_GLOB))


def _growing_spool(spool: Path, *, at_least: int, besides: tuple[Path, ...] = ()) -> Path:
    def found():
        return next((p for p in _spool_files(spool) if p not in besides and p.stat().st_size >= at_least), None)

    return wait_for(found, timeout=60)


def _backdate(path: Path, seconds: int) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def _sweep(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("gc_artifact_blobs", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def small_disk(tmp_path, settings):
    """A real 5 MB file system (tmpfs) for the spool; uploads larger than that fill it."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(folder)], capture_output=True, text=True)
    if mounted.returncode != 0:
        reason = f"cannot mount a 5 MB tmpfs (needs root): {mounted.stderr.strip()}"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    settings.FILE_UPLOAD_TEMP_DIR = str(folder)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def _server(spool: Path, tmp_path: Path):
    server = Gunicorn(spool, tmp_path / "gunicorn.log").start()
    return server


def _kill_mid_body(server: Gunicorn, token: str, model_name: str, spool: Path) -> Path:
    """Stream 24 of 256 MiB, SIGKILL the worker while its spool grows; returns the spool file left behind."""
    upload_ = StreamingUpload(server, token, model_name, mib=256)
    upload_.send(24)
    partial = _growing_spool(spool, at_least=16 * MiB)
    os.kill(server.worker(), signal.SIGKILL)
    upload_.conn.close()
    server.wait_ready()  # the master starts a new worker
    return partial


def test_a_worker_killed_mid_upload_leaves_a_spool_file_the_cleanup_removes_but_never_one_still_being_written(owner, model, spool, tmp_path):
    _, token = api_token_create(user=owner, name="pipeline", scope=TokenScope.FULL)
    server = _server(spool, tmp_path)
    try:
        orphan = _kill_mid_body(server, token, model.name, spool)
        assert orphan.exists() and 16 * MiB <= orphan.stat().st_size < 256 * MiB, "the killed worker's partial spool stays behind"

        in_progress = StreamingUpload(server, token, model.name, mib=32)
        in_progress.send(8)
        live = _growing_spool(spool, at_least=4 * MiB, besides=(orphan,))

        assert "removed 0 abandoned upload spool file(s)" in _sweep("--spool-only"), "both are younger than the grace period"
        _backdate(orphan, SEVEN_HOURS)
        _backdate(live, SEVEN_HOURS)  # a slow client: nothing written for hours, but its worker is alive
        assert "removed 1 abandoned upload spool file(s)" in _sweep("--spool-only")
        assert not orphan.exists()
        assert "removed 0 abandoned upload spool file(s)" in _sweep("--spool-grace-minutes", "0"), "a live worker holds its spool's lock"
        assert live.exists()

        status, body = in_progress.finish()
        assert status == 201, body
        assert body["artifacts"][0]["sha256"] == in_progress.digest
        assert _spool_files(spool) == []
    finally:
        server.stop()


@pytest.mark.redis
def test_the_periodic_cleanup_task_on_a_worker_removes_an_abandoned_spool_file(owner, model, spool, tmp_path):
    _, token = api_token_create(user=owner, name="pipeline", scope=TokenScope.FULL)
    server = _server(spool, tmp_path)
    try:
        orphan = _kill_mid_body(server, token, model.name, spool)
    finally:
        server.stop()
    _backdate(orphan, SEVEN_HOURS)
    worker = Worker(settings.CELERY_BROKER_URL, TMPDIR=spool).start()
    log = Log(worker.process)
    try:
        collect_artifact_garbage.delay()
        # Until the task has finished, not only removed the file: stopping the worker sooner would kill it mid-task.
        wait_for(lambda: log.count("collect_artifact_garbage", "succeeded"), timeout=60)
    finally:
        worker.stop()
        log.reader.join(5)
    assert not orphan.exists()
    assert log.count("collect_artifact_garbage", "'spool_files_removed': 1"), log.text()[-3000:]


def test_a_full_disk_answers_507_deletes_the_partial_upload_at_once_and_the_next_upload_succeeds(owner, model, small_disk, tmp_path):
    _, token = api_token_create(user=owner, name="pipeline", scope=TokenScope.FULL)
    server = _server(small_disk, tmp_path)
    try:
        too_big = StreamingUpload(server, token, model.name, mib=8)
        status, body = too_big.finish()
        assert status == 507, body
        assert body["error"]["code"] == "insufficient_storage"
        assert "ran out of disk space" in body["error"]["message"] and "Try again later" in body["error"]["message"]
        assert _spool_files(small_disk) == [], "the partial spool is deleted at once"
        assert os.statvfs(small_disk).f_bfree * os.statvfs(small_disk).f_frsize > 4 * MiB, "and its space is free again"
        assert not ModelVersion.objects.exists()

        fits = StreamingUpload(server, token, model.name, mib=1)
        status, body = fits.finish()
        assert status == 201, body
        assert Artifact.objects.get().sha256 == fits.digest
        status, _, downloaded = server.request("GET", f"/api/v1/models/{model.name}/versions/1/artifacts/weights.bin", headers={"Authorization": f"Bearer {token}"})
        assert status == 200 and hashlib.sha256(downloaded).hexdigest() == fits.digest
    finally:
        server.stop()
    assert "Upload spool write failed" in server.log() and "No space left on device" in server.log()


def test_the_upload_page_explains_a_full_disk_and_the_next_upload_through_it_works(owner, model, small_disk):
    browser = Client(enforce_csrf_checks=True, raise_request_exception=False)  # CSRF reads the body, as for a real browser
    browser.force_login(owner)
    page = f"/models/{model.name}/versions/new/"
    assert browser.get(page).status_code == 200
    token = browser.cookies["csrftoken"].value

    response = browser.post(page, {"csrfmiddlewaretoken": token, "flavor": "custom", "files": [upload("big.bin", os.urandom(8 * MiB))]})

    assert response.status_code == 507
    text = response.content.decode()
    assert "Upload not received" in text and "ran out of disk space" in text and "Nothing was registered" in text
    assert _spool_files(small_disk) == [] and not ModelVersion.objects.exists()

    weights = os.urandom(MiB)
    response = browser.post(page, {"csrfmiddlewaretoken": token, "flavor": "custom", "files": [upload("small.bin", weights)]})
    assert response.status_code == 302, response.content.decode()[:2000]
    download = browser.get(f"/models/{model.name}/versions/1/artifacts/small.bin")
    assert sha256(streamed(download)) == sha256(weights)


def test_a_full_disk_during_a_session_patch_answers_507_keeps_the_earlier_bytes_and_the_upload_resumes(api_for, owner, model, small_disk):
    api = api_for(owner)
    data = os.urandom(4 * MiB)
    files = [{"path": "big.bin", "size": len(data), "sha256": sha256(data)}]
    session = api.post(f"/api/v1/models/{model.name}/uploads/", {"metadata": {}, "files": files}, format="json").json()
    url = urlsplit(session["files"][0]["upload_url"]).path
    spooled = small_disk / f"session-{session['id']}-0.part"

    def patch(chunk: bytes, offset: int):
        return api.generic("PATCH", url, chunk, content_type="application/offset+octet-stream", HTTP_UPLOAD_OFFSET=str(offset))

    assert patch(data[:MiB], 0).status_code == 204
    other = small_disk / "another-upload"
    other.write_bytes(os.urandom(3 * MiB))  # another upload takes most of what is left
    full = patch(data[MiB:], MiB)
    assert full.status_code == 507, full.content
    error = full.json()["error"]
    assert error["code"] == "insufficient_storage" and "ran out of disk space" in error["message"] and "Try again later" in error["message"]
    assert full["Retry-After"]
    assert spooled.stat().st_size == MiB, "this request's partial bytes are gone, the earlier request's stay"
    assert api.head(url)["Upload-Offset"] == str(MiB)

    other.unlink()  # the other upload is done: the client resumes from the offset HEAD gave
    done = patch(data[MiB:], MiB)
    assert (done.status_code, done["Upload-Status"]) == (204, "stored"), done.content
    assert api.post(urlsplit(session["register_url"]).path).status_code == 201
    assert Artifact.objects.get().sha256 == sha256(data)


def test_completions_racing_the_last_patch_in_threads_never_answer_500(api_for, owner, model, spool):
    """Real threads: the last PATCH and two completions of each file at once. Whoever loses the spool lock answers a 409
    at once (upload_in_progress, or already_stored, incomplete), or what the winner answered; a lost PATCH is resent."""
    api = api_for(owner)
    files = {f"f{i}.bin": os.urandom(64 * 1024) for i in range(4)}
    declared = [{"path": path, "size": len(data), "sha256": sha256(data)} for path, data in files.items()]
    session = api.post(f"/api/v1/models/{model.name}/uploads/", {"metadata": {}, "files": declared}, format="json").json()
    answers = []

    def call(method, url, data=b"", offset=None):
        try:
            extra = {"content_type": "application/offset+octet-stream", "HTTP_UPLOAD_OFFSET": str(offset)} if offset is not None else {}
            response = api.generic(method, urlsplit(url).path, data, **extra)
            answers.append((method, response.status_code, response.content))
        finally:
            connection.close()

    for item in session["files"]:
        data = files[item["path"]]
        assert api.generic("PATCH", urlsplit(item["upload_url"]).path, data[:-1], content_type="application/offset+octet-stream", HTTP_UPLOAD_OFFSET="0").status_code == 204
        threads = [
            threading.Thread(target=call, args=("PATCH", item["upload_url"], data[-1:], len(data) - 1)),
            threading.Thread(target=call, args=("POST", item["complete_url"])),
            threading.Thread(target=call, args=("POST", item["complete_url"])),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        if api.head(urlsplit(item["upload_url"]).path)["Upload-Offset"] != str(len(data)):  # the PATCH lost to a completion: resend
            assert api.generic("PATCH", urlsplit(item["upload_url"]).path, data[-1:], content_type="application/offset+octet-stream", HTTP_UPLOAD_OFFSET=str(len(data) - 1)).status_code == 204
        done = api.post(urlsplit(item["complete_url"]).path)
        assert done.status_code == 200 and done.json()["sha256"] == sha256(data), done.content
    assert all(status in (200, 204, 409) for _, status, _ in answers), answers
    assert all(json.loads(body)["error"]["code"] in ("upload_in_progress", "already_stored", "incomplete") for _, status, body in answers if status == 409)
    assert not list(spool.glob("session-*")), "no spool is left behind"
    assert api.post(urlsplit(session["register_url"]).path).status_code == 201


def test_a_client_that_disconnects_mid_upload_leaves_no_spool_file(owner, model, spool, tmp_path):
    _, token = api_token_create(user=owner, name="pipeline", scope=TokenScope.FULL)
    server = _server(spool, tmp_path)
    try:
        gone = StreamingUpload(server, token, model.name, mib=64)
        gone.send(8)
        _growing_spool(spool, at_least=4 * MiB)
        gone.conn.close()
        wait_for(lambda: _spool_files(spool) == [], timeout=30)
    finally:
        server.stop()
    assert not ModelVersion.objects.exists()
