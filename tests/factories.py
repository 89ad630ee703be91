"""Builders that go through the same services users reach, so test data is shaped like real data."""

import hashlib
import io

from django.core.files.uploadedfile import SimpleUploadedFile

from apps.catalog.services import version_register
from apps.versions.document import metadata_from_dict
from apps.versions.services import incoming_from_bytes


def register_version(model, actor, *, files: dict[str, bytes] | None = None, **metadata):
    files = files if files is not None else {"config.json": b'{"hidden_size": 4}', "model.bin": b"\x00weights"}
    return version_register(
        model=model,
        actor=actor,
        files=[incoming_from_bytes(path, data) for path, data in files.items()],
        metadata=metadata_from_dict(metadata),
    )


def validated_version(model, actor, **metadata):
    """A registered version whose validation job has run (in this process)."""
    from apps.validation.services import validation_run

    version = register_version(model, actor, **metadata)
    validation_run(job_id=version.validation_jobs.get().pk)
    version.refresh_from_db()
    return version


def upload(name: str, data: bytes, content_type: str = "application/octet-stream") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def streamed(response) -> bytes:
    buffer = io.BytesIO()
    for chunk in response.streaming_content:
        buffer.write(chunk)
    return buffer.getvalue()


def promote(version, *, requester, approver, justification: str = "Ready for users"):
    """Take a version to production the way users do: validation, requests, an approval."""
    from apps.approvals.services import transition_request_approve, transition_request_create
    from apps.validation.services import validation_run

    job = version.validation_jobs.order_by("-created_at").first()
    if job is not None and not job.is_finished:
        validation_run(job_id=job.pk)
    version.refresh_from_db()
    if version.stage == "draft":
        transition_request_create(version=version, to_stage="staging", actor=requester, justification=justification)
    transition_request = transition_request_create(version=version, to_stage="production", actor=requester, justification=justification)
    transition_request_approve(transition_request=transition_request, actor=approver, comment="approved")
    version.refresh_from_db()
    return transition_request
