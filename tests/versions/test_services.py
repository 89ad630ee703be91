import os
import time
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.db import IntegrityError

from apps.audit.models import AuditEntry
from apps.models.models import RegisteredModel
from apps.versions.blobs import artifact_storage, blob_key, blob_put
from apps.versions.document import metadata_from_dict
from apps.versions.models import Artifact, Metric, ModelVersion
from apps.catalog.services import version_register
from apps.versions.services import incoming_from_bytes, version_update
from tests.factories import register_version, sha256

pytestmark = pytest.mark.django_db


def _stored(digest: str) -> bool:
    return artifact_storage().exists(blob_key(digest))


def test_registration_stores_artifacts_metrics_datasets_and_an_audit_record(model, owner):
    version = register_version(
        model, owner,
        files={"weights/model.bin": b"abc", "config.json": b"{}"},
        metrics={"accuracy": 0.91, "loss": 1},
        hyperparameters={"lr": 0.01},
        datasets=[{"name": "imdb", "uri": "s3://d/imdb", "digest": "v1", "role": "training"}],
        code={"repository": "https://git/x.git", "commit": "ABCDEF1", "branch": "main", "dirty": True},
    )
    assert version.number == 1 and version.stage == "draft"
    assert {a.path: a.sha256 for a in version.artifacts.all()} == {"weights/model.bin": sha256(b"abc"), "config.json": sha256(b"{}")}
    assert dict(version.metrics.values_list("name", "value")) == {"accuracy": 0.91, "loss": 1.0}
    assert version.code_commit == "abcdef1" and version.code_dirty is True
    assert version.dataset_links.get().dataset.uri == "s3://d/imdb"
    assert all(_stored(a.sha256) for a in version.artifacts.all())
    assert AuditEntry.objects.filter(action="version.registered", object_id=str(version.pk)).exists()


def test_numbers_are_sequential_per_model(model, owner):
    from apps.models.services import model_create

    numbers = [register_version(model, owner).number for _ in range(3)]
    other = model_create(name="other", actor=owner)
    assert numbers == [1, 2, 3]
    assert register_version(other, owner).number == 1


def test_identical_files_are_stored_once(model, owner):
    first = register_version(model, owner, files={"model.bin": b"same bytes"})
    second = register_version(model, owner, files={"renamed/model.bin": b"same bytes"})
    digest = sha256(b"same bytes")
    assert first.artifacts.get().sha256 == second.artifacts.get().sha256 == digest
    directory = os.path.dirname(artifact_storage().path(blob_key(digest)))
    assert os.listdir(directory) == [digest]


def test_a_user_without_register_permission_is_refused(model, reviewer, outsider):
    from django.http import Http404

    with pytest.raises(PermissionDenied):
        register_version(model, reviewer)
    with pytest.raises(Http404):
        register_version(model, outsider)
    assert not ModelVersion.objects.exists()


@pytest.mark.parametrize(
    "files, message",
    [
        ({}, "at least one file"),
        ({"../escape.bin": b"x"}, "'..'"),
        ({"/etc/passwd": b"x"}, "absolute"),
        ({"C:/win.bin": b"x"}, "absolute"),
        ({"a\\b.bin": b"x"}, "contains"),
        ({"a\x00b": b"x"}, "contains"),
        ({"a/./b": b"x"}, "'.'"),
        ({"a//b": b"x"}, "empty"),
        ({"%2e%2e/x": b"x"}, "contains"),
        ({"x#y": b"x"}, "contains"),
    ],
)
def test_bad_files_are_refused_and_nothing_is_stored(model, owner, files, message):
    with pytest.raises(ValidationError, match=message):
        register_version(model, owner, files=files)
    assert not ModelVersion.objects.exists() and not Artifact.objects.exists()
    for data in files.values():
        assert not _stored(sha256(data))


def test_two_files_with_one_path_are_refused(model, owner):
    files = [incoming_from_bytes("a.bin", b"1"), incoming_from_bytes("a.bin", b"2")]
    with pytest.raises(ValidationError, match="Two files have the path"):
        version_register(model=model, files=files, metadata=metadata_from_dict({}), actor=owner)
    assert not _stored(sha256(b"1"))


def test_a_declared_checksum_that_does_not_match_stores_nothing(model, owner):
    incoming = incoming_from_bytes("a.bin", b"real bytes")
    incoming.declared_sha256 = "0" * 64
    with pytest.raises(ValidationError, match="does not match"):
        version_register(model=model, files=[incoming], metadata=metadata_from_dict({}), actor=owner)
    assert not _stored(sha256(b"real bytes")) and not ModelVersion.objects.exists()


def test_a_storage_failure_midway_leaves_no_version_and_the_cleanup_removes_the_orphan(model, owner):
    # A real storage error: the second blob's directory cannot be created because a file sits where it should be.
    good, bad = b"first file", b"second file"
    blocker = artifact_storage().path(f"sha256/{sha256(bad)[:2]}")
    os.makedirs(os.path.dirname(blocker), exist_ok=True)
    with open(blocker, "w") as handle:
        handle.write("in the way")
    try:
        with pytest.raises(OSError):
            register_version(model, owner, files={"a.bin": good, "b.bin": bad})
    finally:
        os.remove(blocker)
    assert not ModelVersion.objects.exists() and not Artifact.objects.exists()
    assert RegisteredModel.objects.get().last_version_number == 0
    assert _stored(sha256(good)), "the first blob was written before the failure"
    call_command("gc_artifact_blobs", "--grace-minutes", "0")
    assert not _stored(sha256(good))


def test_a_database_failure_after_storing_leaves_no_version_and_shared_blobs_survive_the_cleanup(model, owner):
    register_version(model, owner, files={"shared.bin": b"kept"})
    RegisteredModel.objects.filter(pk=model.pk).update(last_version_number=0)  # the next number now collides
    with pytest.raises(IntegrityError):
        register_version(model, owner, files={"shared.bin": b"kept", "new.bin": b"fresh"})
    assert ModelVersion.objects.count() == 1
    call_command("gc_artifact_blobs", "--grace-minutes", "0")
    assert _stored(sha256(b"kept")), "a blob another version references must stay"
    assert not _stored(sha256(b"fresh"))


def test_the_cleanup_command_removes_old_orphans_only(model, owner):
    register_version(model, owner, files={"used.bin": b"used"})
    from django.core.files.base import ContentFile

    blob_put(sha256=sha256(b"old orphan"), content=ContentFile(b"old orphan"))
    blob_put(sha256=sha256(b"young orphan"), content=ContentFile(b"young orphan"))
    old_path = artifact_storage().path(blob_key(sha256(b"old orphan")))
    past = time.time() - timedelta(hours=3).total_seconds()
    os.utime(old_path, (past, past))
    used_path = artifact_storage().path(blob_key(sha256(b"used")))
    os.utime(used_path, (past, past))
    call_command("gc_artifact_blobs", "--grace-minutes", "60")
    assert not _stored(sha256(b"old orphan"))
    assert _stored(sha256(b"young orphan")) and _stored(sha256(b"used"))


def test_only_description_and_tags_change_after_registration(version, owner, reviewer):
    version_update(version=version, actor=owner, description="better words", tags=["x"])
    version.refresh_from_db()
    assert version.description == "better words" and list(version.tags.names()) == ["x"]
    with pytest.raises(PermissionDenied):
        version_update(version=version, actor=reviewer, description="no", tags=[])
    assert Metric.objects.filter(version=version).count() == 0
