"""`model-registry register` through upload sessions, in a subprocess against a live server, on local disk and on S3
(moto): metadata refused before any byte, files the caller may read not sent again, parallel parts straight to the
bucket, and a killed upload resumed by running the same command again without sending again what arrived."""

import json
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from apps.accounts.models import TokenScope
from apps.accounts.services import api_token_create
from apps.versions.blobs import blob_storage_key
from apps.versions.models import ModelVersion, UploadSession
from apps.versions.spool import spool_dir
from tests.factories import sha256
from tests.nodes import ROOT
from tests.s3 import moto_endpoint_fixture, s3_fixture  # noqa: F401  (fixtures: a moto S3 server and a fresh bucket)

pytestmark = pytest.mark.django_db(transaction=True)
MiB = 1024 * 1024
SENT = re.compile(r"sent (\d+) bytes for (\d+) file\(s\); (\d+) already on the registry")


@pytest.fixture
def cli(live_server, owner, tmp_path):
    _, token = api_token_create(user=owner, name="trainer", scope=TokenScope.REGISTER)
    env = {**os.environ, "REGISTRY_URL": live_server.url, "REGISTRY_TOKEN": token, "REGISTRY_RETRIES": "2", "REGISTRY_CACHE_DIR": str(tmp_path / "cache")}

    def start(*argv: str, stderr=subprocess.PIPE) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "registry_cli", *argv], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)

    def run(*argv: str) -> tuple[int, str, str]:
        process = start(*argv)
        out, err = process.communicate(timeout=120)
        return process.returncode, out, err

    run.start = start
    return run


def sent(err: str) -> tuple[int, int, int]:
    found = SENT.search(err)
    assert found, err
    return tuple(int(group) for group in found.groups())


def wait_until(condition, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_refused_document_costs_no_upload_and_known_files_are_not_sent_again(cli, model, tmp_path):
    export = tmp_path / "export"
    (export / "1_Pooling").mkdir(parents=True)
    weights = os.urandom(2 * MiB + 5)
    (export / "model.bin").write_bytes(weights)
    (export / "1_Pooling" / "config.json").write_text("{}")

    code, _, err = cli("register", model.name, str(export), "--flavor", "keras3")
    assert code == 1 and "Unknown flavor" in err and err.count("\n") == 1, err
    assert not UploadSession.objects.exists(), "refused before any session (or byte)"

    code, out, err = cli("register", model.name, str(export), "--metric", "auc=0.9", "--parallel", "2")
    assert code == 0, err
    assert json.loads(out)["number"] == 1
    assert sent(err) == (len(weights) + 2, 2, 0)

    (export / "README.md").write_text("v2")  # a new file beside two the registry holds in v1
    code, out, err = cli("register", model.name, str(export))
    assert code == 0, err
    assert sent(err) == (2, 1, 2), "only the new file travels"
    version = ModelVersion.objects.get(model=model, number=2)
    assert {a.path: a.sha256 for a in version.artifacts.all()} == {
        "model.bin": sha256(weights), "1_Pooling/config.json": sha256(b"{}"), "README.md": sha256(b"v2"),
    }


def test_a_terminal_gets_a_progress_bar(cli, model, tmp_path):
    (tmp_path / "model.bin").write_bytes(os.urandom(3 * MiB))
    reader, terminal = pty.openpty()
    process = cli.start("register", model.name, str(tmp_path / "model.bin"), stderr=terminal)
    os.close(terminal)
    shown = b""
    while True:
        try:
            data = os.read(reader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not data:
            break
        shown += data
    os.close(reader)
    assert process.wait(timeout=60) == 0
    assert re.search(rb"uploading \[#{30}\] [0-9.]+/[0-9.]+ MB 100%", shown), shown


def test_a_killed_upload_resumes_where_the_registry_stopped_on_local_disk(cli, model, tmp_path):
    weights = os.urandom(24 * MiB)
    (tmp_path / "model.bin").write_bytes(weights)
    first = cli.start("register", model.name, str(tmp_path / "model.bin"), "--limit-rate", "12M")

    def held() -> int:
        return sum(path.stat().st_size for path in spool_dir().glob("session-*.part"))

    wait_until(lambda: held() >= 10 * MiB)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    time.sleep(0.2)  # what the server thread still had in its socket buffer lands
    arrived = held()
    assert arrived < len(weights)

    code, out, err = cli("register", model.name, str(tmp_path / "model.bin"))
    assert code == 0, err
    assert "resuming upload session" in err
    resent = sent(err)[0] + arrived - len(weights)
    assert resent == 0, f"{resent} bytes sent twice"  # the new run starts at the registry's offset
    assert json.loads(out)["artifacts"][0]["sha256"] == sha256(weights)
    assert UploadSession.objects.get().status == "registered"


def test_on_s3_parts_go_straight_to_the_bucket_and_a_killed_upload_sends_only_missing_parts(cli, model, tmp_path, s3, settings):
    settings.UPLOAD_PART_BYTES = 5 * MiB
    weights = os.urandom(15 * MiB + 3)
    (tmp_path / "model.bin").write_bytes(weights)
    first = cli.start("register", model.name, str(tmp_path / "model.bin"), "--limit-rate", "15M", "--parallel", "1")

    def parts() -> list[dict]:
        uploads = s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", [])
        if not uploads:
            return []
        listed = s3.client.list_parts(Bucket=s3.bucket, Key=uploads[0]["Key"], UploadId=uploads[0]["UploadId"])
        return listed.get("Parts", [])

    wait_until(lambda: len(parts()) >= 2)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    held = sum(part["Size"] for part in parts())

    code, out, err = cli("register", model.name, str(tmp_path / "model.bin"), "--parallel", "3")
    assert code == 0, err
    assert sent(err)[0] == len(weights) - held, "parts S3 held were not sent again"
    assert json.loads(out)["artifacts"][0]["sha256"] == sha256(weights)
    located = blob_storage_key(sha256(weights))
    assert s3.keys() == [located] and s3.body(located) == weights, "one object: the upload itself"
    assert s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []

    # A deployer pulls it from where it stays, and every byte is still checked.
    code, _, err = cli("pull", f"{model.name}/1", "-o", str(tmp_path / "pulled"))
    assert code == 0, err
    assert (tmp_path / "pulled" / "model.bin").read_bytes() == weights
    s3.client.put_object(Bucket=s3.bucket, Key=located, Body=b"evil" + weights[4:])
    code, _, err = cli("pull", f"{model.name}/1", "-o", str(tmp_path / "again"), "--cache-dir", str(tmp_path / "other-cache"))
    assert code == 1 and "model.bin: SHA-256 mismatch" in err


def test_hash_first_finds_files_the_caller_can_read_though_this_machine_never_hashed_them(cli, model, tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    weights = os.urandom(MiB)
    (export / "model.bin").write_bytes(weights)
    assert cli("register", model.name, str(export))[0] == 0
    shutil.rmtree(tmp_path / "cache" / "digests")  # as on another machine or a fresh checkout
    (export / "README.md").write_text("v2")

    code, _, err = cli("register", model.name, str(export), "--hash-first")
    assert code == 0, err
    assert sent(err) == (2, 1, 1), "model.bin was declared with its digest and not sent again"


@pytest.mark.parametrize("store", ["local", "s3"])
def test_a_file_that_changes_while_it_is_sent_is_refused_at_completion_and_nothing_registered(cli, model, tmp_path, request, settings, store):
    if store == "s3":
        s3 = request.getfixturevalue("s3")
        settings.UPLOAD_PART_BYTES = 5 * MiB

        def arriving() -> bool:
            uploads = s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", [])
            return bool(uploads and s3.client.list_parts(Bucket=s3.bucket, Key=uploads[0]["Key"], UploadId=uploads[0]["UploadId"]).get("Parts"))
    else:

        def arriving() -> bool:
            return any(path.stat().st_size for path in spool_dir().glob("session-*.part"))

    weights = tmp_path / "model.bin"
    weights.write_bytes(os.urandom(11 * MiB))
    process = cli.start("register", model.name, str(weights), "--limit-rate", "8M", "--parallel", "1")
    wait_until(arriving)  # hashed by now (a local read of 11 MiB beside a send at 8 MB/s); the last MiB not sent yet
    with open(weights, "r+b") as handle:
        handle.seek(10 * MiB)
        handle.write(os.urandom(MiB))
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1 and "checksum_mismatch" not in err, err
    assert "SHA-256" in err and "change during the upload" in err, err
    assert not ModelVersion.objects.exists()
