"""Builders that go through the same services users reach, so test data is shaped like real data."""

import hashlib
import io

from django.core.files.uploadedfile import SimpleUploadedFile

from apps.versions.metadata import metadata_from_dict
from apps.versions.services import incoming_from_bytes, version_register


def register_version(model, actor, *, files: dict[str, bytes] | None = None, **metadata):
    files = files if files is not None else {"config.json": b'{"hidden_size": 4}', "model.bin": b"\x00weights"}
    return version_register(
        model=model,
        actor=actor,
        files=[incoming_from_bytes(path, data) for path, data in files.items()],
        metadata=metadata_from_dict(metadata),
    )


def upload(name: str, data: bytes, content_type: str = "application/octet-stream") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def streamed(response) -> bytes:
    buffer = io.BytesIO()
    for chunk in response.streaming_content:
        buffer.write(chunk)
    return buffer.getvalue()
