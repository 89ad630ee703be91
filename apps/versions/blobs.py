"""Content-addressed blob store on top of Django's storage API (local disk or S3 alike)."""

import logging

from django.core.files import File
from django.core.files.storage import FileSystemStorage, storages
from django.utils import timezone

logger = logging.getLogger(__name__)
PREFIX = "sha256"


def artifact_storage():
    return storages["artifacts"]


def blob_key(sha256: str) -> str:
    return f"{PREFIX}/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def blob_put(*, sha256: str, content: File) -> bool:
    """Store `content` under its digest unless already there. Returns True when this call created the blob."""
    storage = artifact_storage()
    key = blob_key(sha256)
    if storage.exists(key):
        return False
    saved = storage.save(key, content)
    if saved != key:
        # Another upload of the same bytes won the race; its copy is identical, so drop ours.
        storage.delete(saved)
        return False
    return True


def blob_is_local() -> bool:
    return isinstance(artifact_storage(), FileSystemStorage)


def _walk(storage, directory: str):
    subdirs, files = storage.listdir(directory)
    for name in files:
        yield f"{directory}/{name}", name
    for sub in subdirs:
        yield from _walk(storage, f"{directory}/{sub}")


def orphan_blobs(*, older_than: timezone.timedelta):
    """Yield keys of stored blobs that no artifact references and that are older than the grace period.

    The grace period keeps blobs of registrations still in flight (stored, not yet committed).
    """
    from .models import Artifact

    storage = artifact_storage()
    try:
        candidates = list(_walk(storage, PREFIX))
    except FileNotFoundError:
        return
    cutoff = timezone.now() - older_than
    digests = [name for _, name in candidates]
    referenced = set()
    for start in range(0, len(digests), 1000):
        referenced.update(Artifact.objects.filter(sha256__in=digests[start : start + 1000]).values_list("sha256", flat=True))
    for key, name in candidates:
        if name in referenced:
            continue
        if storage.get_modified_time(key) <= cutoff:
            yield key
