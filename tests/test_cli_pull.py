"""`model-registry pull` and `download` in a subprocess against a live server, on local disk and on S3 (moto):
only missing files travel, the cache is shared across versions, partial files resume, every SHA-256 is checked."""

import json
import os
import pty
import shutil
import subprocess
import sys
import threading

import pytest
from django.core.signals import request_started

from apps.accounts.models import TokenScope
from apps.accounts.services import api_token_create
from apps.approvals.services import alias_set
from apps.versions.blobs import blob_key
from tests.factories import register_version, sha256
from tests.nodes import ROOT
from tests.s3 import moto_endpoint_fixture, s3_fixture  # noqa: F401  (fixtures: a moto S3 server and a fresh bucket)

pytestmark = pytest.mark.django_db(transaction=True)

WEIGHTS = os.urandom(3 * 1024 * 1024 + 17)  # more than one 1 MiB chunk
FILES = {
    "config.json": b'{"hidden_size": 384}',
    "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
    "model.safetensors": WEIGHTS,
}


@pytest.fixture
def requests_seen():
    """(path, Range header) of every request the live server's Django handles: counts what a pull costs."""
    seen, lock = [], threading.Lock()

    def record(sender, environ, **kwargs):
        with lock:
            seen.append((environ["PATH_INFO"], environ.get("HTTP_RANGE")))

    request_started.connect(record, weak=False)
    yield seen
    request_started.disconnect(record)


@pytest.fixture
def cli(live_server, owner, tmp_path):
    _, token = api_token_create(user=owner, name="deployer", scope=TokenScope.READ)
    env = {
        **os.environ,
        "REGISTRY_URL": live_server.url,
        "REGISTRY_TOKEN": token,
        "REGISTRY_RETRIES": "0",
        "REGISTRY_CACHE_DIR": str(tmp_path / "cache"),
    }

    def run(*argv: str, cwd=None, stderr=subprocess.PIPE) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "registry_cli", *argv]
        return subprocess.run(command, cwd=cwd or ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=120)

    return run


def _files(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _drain(screen) -> bytes:
    """Everything the program wrote to its terminal (reading past its end raises EIO on Linux)."""
    data = b""
    while True:
        try:
            chunk = screen.read(4096)
        except OSError:
            return data
        if not chunk:
            return data
        data += chunk


def _artifact_requests(seen) -> list[tuple[str, str | None]]:
    return [(path.rsplit("/artifacts/", 1)[1], byte_range) for path, byte_range in seen if "/artifacts/" in path]


def test_a_pull_writes_every_file_under_its_path_and_a_second_pull_fetches_only_the_manifest_and_download_keeps_paths(cli, model, owner, tmp_path, requests_seen):
    register_version(model, owner, files=FILES)
    done = cli("pull", "sentiment/1", "-o", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert _files(tmp_path / "out") == FILES
    summary = json.loads(done.stdout)
    assert (summary["files"], summary["downloaded"], summary["bytes_downloaded"]) == (3, 3, sum(map(len, FILES.values())))
    assert len(requests_seen) == 4 and "\r" not in done.stderr  # manifest + 3 files; no progress bar off a terminal

    requests_seen.clear()
    again = cli("pull", "sentiment/1", "-o", str(tmp_path / "out"))
    assert json.loads(again.stdout)["unchanged"] == 3 and [path for path, _ in requests_seen] == ["/api/v1/models/sentiment/versions/1/manifest/"]

    terminal, pty_end = pty.openpty()  # stderr on a terminal: a progress bar
    with os.fdopen(terminal, "rb", buffering=0) as screen:
        shown = cli("pull", "sentiment/1", "-o", str(tmp_path / "shown"), "--cache-dir", str(tmp_path / "cold"), stderr=pty_end)
        os.close(pty_end)
        drawn = _drain(screen)
    assert shown.returncode == 0 and b"\rsentiment v1 [##############################] 3.1/3.1 MB 100%" in drawn

    (tmp_path / "config.json").write_bytes(b"mine")  # the top-level config.json, which 1_Pooling/config.json once overwrote
    done = cli("download", "sentiment", "1", "1_Pooling/config.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "1_Pooling" / "config.json").read_bytes() == FILES["1_Pooling/config.json"]
    assert (tmp_path / "config.json").read_bytes() == b"mine"
    assert cli("pull", "sentiment/1", cwd=tmp_path).returncode == 0
    assert _files(tmp_path / "sentiment") == FILES


def test_the_cache_is_shared_across_versions_and_partial_downloads_resume(cli, model, owner, tmp_path, requests_seen):
    register_version(model, owner, files=FILES)
    v2 = register_version(model, owner, files={**FILES, "config.json": b'{"hidden_size": 768}'})
    alias_set(model=model, alias="champion", version=v2, actor=owner)
    assert cli("pull", "sentiment/1", "-o", str(tmp_path / "v1")).returncode == 0
    requests_seen.clear()
    done = cli("pull", "sentiment@champion", "-o", str(tmp_path / "v2"))
    assert done.returncode == 0, done.stderr
    assert _files(tmp_path / "v2") == {**FILES, "config.json": b'{"hidden_size": 768}'}
    assert _artifact_requests(requests_seen) == [("config.json", None)]  # the weights and the pooling config came from the cache
    assert json.loads(done.stdout)["from_cache"] == 2

    requests_seen.clear()
    shutil.rmtree(tmp_path / "cache")
    partial = tmp_path / "cache" / "partial" / sha256(WEIGHTS)
    partial.parent.mkdir(parents=True)
    half = len(WEIGHTS) // 2
    partial.write_bytes(WEIGHTS[:half])
    done = cli("pull", "sentiment/1", "-o", str(tmp_path / "resumed"))
    assert done.returncode == 0, done.stderr
    assert ("model.safetensors", f"bytes={half}-") in _artifact_requests(requests_seen)
    assert _files(tmp_path / "resumed") == FILES and not partial.exists()

    (tmp_path / "resumed" / "model.safetensors").unlink()
    (tmp_path / "cache" / "sha256" / sha256(WEIGHTS)[:2] / sha256(WEIGHTS)).unlink()
    partial.write_bytes(b"garbage" + WEIGHTS[7:half])  # a partial file damaged on disk: resumed, fails the check, fetched whole
    requests_seen.clear()
    done = cli("pull", "sentiment/1", "-o", str(tmp_path / "resumed"))
    assert done.returncode == 0, done.stderr
    assert _artifact_requests(requests_seen) == [("model.safetensors", f"bytes={half}-"), ("model.safetensors", None)]
    assert _files(tmp_path / "resumed") == FILES


def test_a_tampered_blob_a_local_problem_and_a_bad_reference_are_each_refused_in_one_line(cli, model, owner, tmp_path, isolated_artifacts):
    register_version(model, owner, files=FILES)
    (isolated_artifacts / blob_key(sha256(WEIGHTS))).write_bytes(b"evil" + WEIGHTS[4:])
    done = cli("pull", "sentiment/1", "-o", str(tmp_path / "out"))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "model.safetensors: SHA-256 mismatch" in done.stderr
    assert _files(tmp_path / "out") == {} and not list((tmp_path / "cache").rglob(sha256(WEIGHTS)))
    single = cli("download", "sentiment", "1", "model.safetensors", cwd=tmp_path)
    assert single.returncode == 1 and "SHA-256 mismatch" in single.stderr and not list(tmp_path.glob("model.safetensors*"))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = cli("pull", "sentiment/1", "-o", str(blocker / "out"))
    assert done.returncode == 1 and "Could not write" in done.stderr and "Not a directory" in done.stderr
    assert "reach the registry" not in done.stderr
    wrong = cli("pull", "sentiment", "-o", str(tmp_path / "out"))
    assert wrong.returncode == 1 and "NAME@ALIAS" in wrong.stderr
    keys_alone = cli("pull", "sentiment/1", "--keys", str(tmp_path / "keys.json"), "-o", str(tmp_path / "out"))
    assert keys_alone.returncode == 1 and "add --verify" in keys_alone.stderr
    missing = cli("pull", "sentiment:production", "-o", str(tmp_path / "out"))
    assert missing.returncode == 1 and "404" in missing.stderr and "no version in production" in missing.stderr


def test_pull_and_download_from_s3_check_every_file(cli, model, owner, tmp_path, s3):
    register_version(model, owner, files=FILES)
    partial = tmp_path / "cache" / "partial" / sha256(WEIGHTS)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(WEIGHTS[: len(WEIGHTS) // 3])  # resumed with a Range on the presigned URL
    done = cli("pull", "sentiment/1", "-o", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert _files(tmp_path / "out") == FILES and not partial.exists()

    s3.client.put_object(Bucket=s3.bucket, Key=blob_key(sha256(WEIGHTS)), Body=b"evil" + WEIGHTS[4:])
    fresh = cli("pull", "sentiment/1", "-o", str(tmp_path / "again"), "--cache-dir", str(tmp_path / "other-cache"))
    assert fresh.returncode == 1 and "model.safetensors: SHA-256 mismatch" in fresh.stderr
    single = cli("download", "sentiment", "1", "model.safetensors", cwd=tmp_path)
    assert single.returncode == 1 and "SHA-256 mismatch" in single.stderr


