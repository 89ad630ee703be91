"""Signed manifests: made where a pointer moves (production, governed aliases, rollbacks), served by the API with the
public keys at the well-known URL, shown on the version page; tampering, a wrong key and a rotated key, verified as a
client does (registry_cli.verify)."""

import base64
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from apps.versions.aliases import PRODUCTION_ALIAS
from apps.approvals.services import (
    alias_policy_update,
    approval_policy_update,
    alias_rollback,
    transition_request_approve,
    transition_request_create,
)
from apps.signing.keys import create_key_file, public_pem
from apps.signing.models import ManifestSignature
from apps.validation.services import validation_run
from registry_cli.verify import VerificationError, _keys_from_document, key_id_of, verify_envelope
from apps.versions.blobs import blob_key
from apps.versions.lifecycle import Stage
from tests.factories import promote, register_version, sha256, streamed

pytestmark = pytest.mark.django_db

FILES = {"config.json": b'{"hidden_size": 4}', "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}', "model.bin": b"\x00weights"}


@pytest.fixture
def signing_key(tmp_path, settings):
    """An active signing key, as `scripts/run` makes one (`manage.py manifest_signing_key create`)."""
    path = tmp_path / "keys" / "active.pem"
    call_command("manifest_signing_key", "create", str(path))
    settings.MANIFEST_SIGNING_KEY_FILE, settings.MANIFEST_RETIRED_KEY_FILES = str(path), []
    return path


def _signatures(api, number: int, **query) -> list[dict]:
    response = api.get(f"/api/v1/models/sentiment/versions/{number}/signatures/", query)
    assert response.status_code == 200, response.content
    return response.json()["results"]


def _published(client) -> dict[str, bytes]:
    response = client.get("/.well-known/model-registry-keys.json")
    assert response.status_code == 200
    return _keys_from_document(response.json(), "the well-known key list")


def test_entering_production_signs_the_manifest_with_the_approvals_that_let_it_in(signing_key, model, owner, reviewer, api_for, client, web_for):
    version = register_version(model, owner, files=FILES)
    promote(version, requester=owner, approver=reviewer, justification="AUC +2")
    [signed] = _signatures(api_for(reviewer), 1)
    statement = verify_envelope(signed["envelope"], _published(client))  # the well-known URL needs no login
    assert statement["files"] == [{"path": path, "size": len(FILES[path]), "sha256": sha256(FILES[path])} for path in sorted(FILES)]
    assert (statement["model"], statement["version"], statement["version_id"], statement["pointer"]) == ("sentiment", 1, str(version.pk), "production")
    assert [a["approver"] for a in statement["approvals"]] == ["reviewer"] and statement["request"]["justification"] == "AUC +2"
    assert statement["applied_by"] == "reviewer" and statement["key_id"] == signed["key_id"] == signed["envelope"]["signatures"][0]["keyid"]
    assert signed["approved_by"] == ["reviewer"] and signed["key_status"] == "active"
    wrong = api_for(reviewer).get("/api/v1/models/sentiment/versions/1/signatures/", {"pointr": "production"})
    assert wrong.status_code == 400 and "pointr" in wrong.json()["error"]["fields"]

    page = web_for(owner).get("/models/sentiment/versions/1/").content.decode()
    assert 'id="signatures"' in page and signed["key_id"] in page and signed["envelope"]["signatures"][0]["sig"] in page
    assert "<td>reviewer</td>" in page


def test_a_tampered_file_manifest_or_key_does_not_verify(signing_key, model, owner, reviewer, api_for, client, tmp_path, isolated_artifacts):
    promote(register_version(model, owner, files=FILES), requester=owner, approver=reviewer)
    keys = _published(client)
    signed_files = {f["path"]: f["sha256"] for f in verify_envelope(_signatures(api_for(owner), 1)[0]["envelope"], keys)["files"]}
    (isolated_artifacts / blob_key(sha256(FILES["model.bin"]))).write_bytes(b"\x01weights")  # a blob changed in the store
    served = streamed(api_for(owner).get("/api/v1/models/sentiment/versions/1/artifacts/model.bin"))
    assert sha256(served) != signed_files["model.bin"]  # what a client checks the bytes against
    row = ManifestSignature.objects.get()
    row.payload = row.payload.replace(sha256(FILES["model.bin"]), sha256(b"other weights"))  # a manifest changed in the database
    row.save()
    with pytest.raises(VerificationError, match="does not verify"):
        verify_envelope(_signatures(api_for(owner), 1)[0]["envelope"], keys)

    other = tmp_path / "other.pem"
    create_key_file(str(other))
    envelope = _signatures(api_for(owner), 1)[0]["envelope"]
    other_raw = base64.b64decode(_raw(other))
    with pytest.raises(VerificationError, match="not among the trusted keys"):
        verify_envelope(envelope, {key_id_of(other_raw): other_raw})
    with pytest.raises(VerificationError, match="does not verify"):  # another key posing under the signing key's id
        verify_envelope(envelope, {envelope["signatures"][0]["keyid"]: other_raw})


def _raw(path) -> str:
    """The base64 raw public key of a PEM key file, as the well-known document lists it."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_public_key(public_pem(str(path)))
    return base64.b64encode(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def test_a_rotated_key_keeps_old_signatures_verifiable(signing_key, model, owner, reviewer, api_for, client, settings, tmp_path):
    promote(register_version(model, owner, files=FILES), requester=owner, approver=reviewer)
    retired = tmp_path / "keys" / "retired.pub.pem"
    retired.write_bytes(public_pem(str(signing_key)))  # only the public half of the old key is kept
    fresh = tmp_path / "keys" / "fresh.pem"
    create_key_file(str(fresh))
    settings.MANIFEST_SIGNING_KEY_FILE, settings.MANIFEST_RETIRED_KEY_FILES = str(fresh), [str(retired)]
    promote(register_version(model, owner, files={**FILES, "model.bin": b"\x01weights"}), requester=owner, approver=reviewer)

    published = client.get("/.well-known/model-registry-keys.json").json()["keys"]
    assert [key["status"] for key in published] == ["active", "retired"]
    keys = _published(client)
    old, new = _signatures(api_for(owner), 1)[0], _signatures(api_for(owner), 2)[0]
    assert old["key_id"] != new["key_id"] and (old["key_status"], new["key_status"]) == ("retired", "active")
    assert verify_envelope(old["envelope"], keys)["version"] == 1
    assert verify_envelope(new["envelope"], keys)["version"] == 2


def test_a_governed_alias_and_a_rollback_are_signed_but_an_ungoverned_alias_is_not(signing_key, model, owner, reviewer, api_for):
    first = register_version(model, owner, files=FILES)
    promote(first, requester=owner, approver=reviewer)
    promote(register_version(model, owner, files={"model.bin": b"v2"}), requester=owner, approver=reviewer)
    alias_rollback(model=model, alias=PRODUCTION_ALIAS, actor=reviewer, reason="error rate up", to_version=first)
    rollback = _signatures(api_for(owner), 1, pointer="production")[0]["statement"]
    assert rollback["rollback"] is True and [a["approver"] for a in rollback["approvals"]] == ["reviewer"]  # of the request that first let it in

    transition_request_create(version=first, alias="candidate", actor=owner, justification="try it")  # ungoverned: applied, not signed
    approval_policy_update(model=model, actor=owner, policies={Stage.PRODUCTION: (0, None)})  # production needs no approval now
    third = register_version(model, owner, files={"model.bin": b"v3"})
    validation_run(job_id=third.validation_jobs.get().pk)
    transition_request_create(version=third, to_stage=Stage.STAGING, actor=owner, justification="staging needs none")
    transition_request_create(version=third, to_stage=Stage.PRODUCTION, actor=owner, justification="no review needed")  # applied at once
    unreviewed = _signatures(api_for(owner), 3)[0]["statement"]
    assert unreviewed["approvals"] == [] and unreviewed["request"]["justification"] == "no review needed"
    alias_policy_update(model=model, alias="champion", actor=owner, required_approvals=1)
    asked = transition_request_create(version=first, alias="champion", actor=owner, justification="best so far")
    transition_request_approve(transition_request=asked, actor=reviewer, comment="ok")
    assert [s["pointer"] for s in _signatures(api_for(owner), 1)] == ["@champion", "production", "production"]
    assert _signatures(api_for(owner), 1, pointer="@champion")[0]["approved_by"] == ["reviewer"]


def test_without_a_key_nothing_is_signed_and_the_deploy_check_warns(model, owner, reviewer, client, settings, outsider, api_for):
    settings.MANIFEST_SIGNING_KEY_FILE, settings.MANIFEST_RETIRED_KEY_FILES = "", []
    promote(register_version(model, owner), requester=owner, approver=reviewer)
    assert not ManifestSignature.objects.exists()
    assert client.get("/.well-known/model-registry-keys.json").json()["error"]["code"] == "not_found"
    with pytest.raises(SystemCheckError, match="signing.W001"):
        call_command("check", "--deploy", "--fail-level", "WARNING", "--tag", "security")
    assert api_for(outsider).get("/api/v1/models/sentiment/versions/1/signatures/").status_code == 404


def test_a_key_file_that_cannot_be_used_stops_start_up(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "registry_site.settings.test", "MANIFEST_SIGNING_KEY_FILE": str(bad)},
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0 and f"MANIFEST_SIGNING_KEY_FILE: {bad} is not an unencrypted PEM private key" in done.stderr
