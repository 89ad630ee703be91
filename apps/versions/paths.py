"""Artifact paths: canonicalised once, validated on that canonical string, and that string is what is stored.

Paths are labels inside a version; blobs live under their SHA-256, so a path never reaches the file system.
"""

import re
import unicodedata

from django.core.exceptions import ValidationError

MAX_PATH_LENGTH = 1024
MAX_SEGMENT_LENGTH = 255
FORBIDDEN_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\\%#?*<>|\"]")
DRIVE_PREFIX = re.compile(r"^[A-Za-z]:")


def canonical_artifact_path(raw: str) -> str:
    """Return the canonical form of a relative artifact path, or raise ValidationError saying what is wrong."""
    if not isinstance(raw, str) or not raw:
        raise ValidationError("An artifact path is empty.", code="empty_path")
    path = unicodedata.normalize("NFC", raw)
    if len(path) > MAX_PATH_LENGTH:
        raise ValidationError(f"Artifact path is longer than {MAX_PATH_LENGTH} characters.", code="path_too_long")
    bad = FORBIDDEN_CHARACTERS.search(path)
    if bad:
        raise ValidationError(
            f"Artifact path {path!r} contains {bad.group()!r}; use letters, digits, '.', '-', '_' and '/'.",
            code="path_characters",
        )
    if path.startswith("/") or DRIVE_PREFIX.match(path):
        raise ValidationError(f"Artifact path {path!r} is absolute; give a path relative to the version.", code="absolute_path")
    segments = path.split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise ValidationError(
                f"Artifact path {path!r} has an empty, '.' or '..' segment; give a plain relative path like 'weights/model.safetensors'.",
                code="path_traversal",
            )
        if len(segment) > MAX_SEGMENT_LENGTH or segment != segment.strip():
            raise ValidationError(f"Artifact path {path!r} has a segment that is too long or padded with spaces.", code="path_segment")
    return path
