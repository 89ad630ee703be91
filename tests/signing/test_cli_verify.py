"""`model-registry pull --verify` in a subprocess against a live server: a signed version pulls, and a tampered file,
a tampered manifest, a wrong key or a missing signature are refused in one line with nothing written; a key rotated
since keeps old signatures verifying."""

import json
import os
import subprocess
import sys

import pytest
from django.core.management import call_command

from apps.accounts.models import TokenScope
from apps.accounts.services import api_token_create
from apps.approvals.services import alias_policy_update, transition_request_approve, transition_request_create
from apps.signing.keys import create_key_file, public_pem
from apps.signing.models import ManifestSignature
from apps.versions.blobs import blob_key
from tests.factories import promote, register_version, sha256
from tests.nodes import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

FILES = {"config.json": b'{"hidden_size": 4}', "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}', "model.bin": b"\x00weights" * 1000}


@pytest.fixture
def signing_key(tmp_path, settings):
    path = tmp_path / "keys" / "active.pem"
    call_command("manifest_signing_key", "create", str(path))
    settings.MANIFEST_SIGNING_KEY_FILE, settings.MANIFEST_RETIRED_KEY_FILES = str(path), []
    return path


@pytest.fixture
def cli(live_server, owner, tmp_path):
    _, token = api_token_create(user=owner, name="deployer", scope=TokenScope.READ)
    env = {**os.environ, "REGISTRY_URL": live_server.url, "REGISTRY_TOKEN": token, "REGISTRY_RETRIES": "0", "REGISTRY_CACHE_DIR": str(tmp_path / "cache")}

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "registry_cli", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    return run


def _refused(done: subprocess.CompletedProcess, fragment: str) -> None:
    assert done.returncode == 1 and done.stdout == "", done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], done.stderr


def test_a_signed_version_pulls_verified_and_a_tampered_manifest_a_wrong_key_or_no_signature_is_refused(cli, signing_key, model, owner, reviewer, tmp_path):
    promote(register_version(model, owner, files=FILES), requester=owner, approver=reviewer)
    done = cli("pull", "sentiment:production", "-o", str(tmp_path / "out"), "--verify")
    assert done.returncode == 0, done.stderr
    verified = json.loads(done.stdout)["verified"]
    assert verified["pointer"] == "production" and verified["approved_by"] == ["reviewer"]
    assert verified["key_id"] == ManifestSignature.objects.get().key_id
    assert {p.relative_to(tmp_path / "out").as_posix(): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()} == FILES

    other = tmp_path / "other.pem"
    create_key_file(str(other))
    (tmp_path / "other.pub.pem").write_bytes(public_pem(str(other)))
    _refused(cli("pull", "sentiment:production", "-o", str(tmp_path / "wrong-key"), "--verify", "--keys", str(tmp_path / "other.pub.pem")),
             "which is not among the trusted keys")
    (tmp_path / "pinned.pub.pem").write_bytes(public_pem(str(signing_key)))
    alias_policy_update(model=model, alias="champion", actor=owner, required_approvals=1)
    asked = transition_request_create(version=model.versions.get(number=1), alias="champion", actor=owner, justification="best so far")
    transition_request_approve(transition_request=asked, actor=reviewer, comment="ok")
    by_alias = cli("pull", "sentiment@champion", "-o", str(tmp_path / "champion"), "--verify", "--keys", str(tmp_path / "pinned.pub.pem"))
    assert by_alias.returncode == 0 and json.loads(by_alias.stdout)["verified"]["pointer"] == "@champion", by_alias.stderr
    assert cli("pull", "sentiment/1", "-o", str(tmp_path / "pinned"), "--verify", "--keys", str(tmp_path / "pinned.pub.pem")).returncode == 0

    for row in ManifestSignature.objects.all():  # the manifests signed for production and @champion, changed in the database
        row.payload = row.payload.replace(sha256(FILES["model.bin"]), sha256(b"evil"))
        row.save()
    _refused(cli("pull", "sentiment:production", "-o", str(tmp_path / "tampered-manifest"), "--verify"), "does not verify")

    register_version(model, owner, files={"model.bin": b"never reviewed"})
    _refused(cli("pull", "sentiment/2", "-o", str(tmp_path / "unsigned"), "--verify"), "sentiment v2 has no signature")
    assert not any((tmp_path / name).exists() for name in ("wrong-key", "tampered-manifest", "unsigned"))


def test_a_file_tampered_in_storage_after_signing_is_refused(cli, signing_key, model, owner, reviewer, tmp_path, isolated_artifacts):
    promote(register_version(model, owner, files=FILES), requester=owner, approver=reviewer)
    (isolated_artifacts / blob_key(sha256(FILES["model.bin"]))).write_bytes(b"\x01weights" * 1000)
    done = cli("pull", "sentiment:production", "-o", str(tmp_path / "out"), "--verify")
    _refused(done, "model.bin")
    assert not (tmp_path / "out" / "model.bin").exists()


def test_a_signature_made_before_a_key_rotation_still_verifies(cli, signing_key, model, owner, reviewer, tmp_path, settings):
    promote(register_version(model, owner, files=FILES), requester=owner, approver=reviewer)
    retired = tmp_path / "keys" / "retired.pub.pem"
    retired.write_bytes(public_pem(str(signing_key)))
    fresh = tmp_path / "keys" / "fresh.pem"
    create_key_file(str(fresh))
    settings.MANIFEST_SIGNING_KEY_FILE, settings.MANIFEST_RETIRED_KEY_FILES = str(fresh), [str(retired)]
    promote(register_version(model, owner, files={**FILES, "model.bin": b"v2"}), requester=owner, approver=reviewer)

    old = cli("pull", "sentiment/1", "-o", str(tmp_path / "v1"), "--verify")  # keys from the registry's well-known URL
    assert old.returncode == 0, old.stderr
    new = cli("pull", "sentiment:production", "-o", str(tmp_path / "v2"), "--verify")
    assert new.returncode == 0, new.stderr
    assert json.loads(old.stdout)["verified"]["key_id"] != json.loads(new.stdout)["verified"]["key_id"]
