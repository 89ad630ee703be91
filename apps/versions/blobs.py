"""Content-addressed blob store on top of Django's storage API (local disk or S3 alike).

Blobs are shared between versions and storage is not transactional, so deleting one is only safe when no version
uses it and no registration is about to. A registration therefore reserves its digests (`blob_reserve`) in a
committed transaction of its own before it looks at the store, and locks its reservations right before its
version commits (`blob_reservations_hold`). The garbage collector (`blob_collect_garbage`) re-checks each
candidate under a lock that excludes new reservations, and locks the candidate's reservations too, so it either
sees the reservation or the committed artifact row, or it deletes first and the registration then finds the blob
missing and stores it again.

A blob's bytes are under its digest's key (`paths.blob_key`), or, for a file an upload session sent to S3, where the
upload put them (`BlobLocation`): `blob_storage_key` says which, and every read goes through it.
"""

import errno
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from botocore.exceptions import BotoCoreError, ClientError

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, storages
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone
from storages.backends.s3 import _filter_download_params

from .models import Artifact, BlobLocation, BlobReservation
from .paths import BLOB_PREFIX, blob_key

logger = logging.getLogger(__name__)
# Key of the PostgreSQL advisory lock between reservations (shared) and collection decisions (exclusive): "blobgcrs".
RESERVATION_LOCK_KEY = int.from_bytes(b"blobgcrs", "big")
BLOB_CHUNK = 1024 * 1024
RANGE_BUFFER = 64 * 1024  # what one small read fetches: a safetensors header, a zip directory, an ONNX field's window
RANGE_GROWTH_LIMIT = 64 * 1024 * 1024  # the largest single GET a run of sequential reads grows to


class BlobReservationLost(OSError):
    """A registration outlived its reservations (BLOB_RESERVATION_SECONDS), so its blobs may have been collected.

    An OSError, so the API answers it like any storage failure: 503, nothing registered, try again.
    """


def artifact_storage():
    return storages["artifacts"]


def blob_storage_key(sha256: str) -> str:
    """The storage key of a blob's bytes: where an upload session left them (S3 only), else under its digest."""
    return blob_storage_keys([sha256])[sha256]


def blob_storage_keys(digests) -> dict[str, str]:
    """`blob_storage_key` of each digest, in one query."""
    located = {} if blob_is_local() else dict(BlobLocation.objects.filter(sha256__in=set(digests)).values_list("sha256", "key"))
    return {digest: located.get(digest) or blob_key(digest) for digest in digests}


def blob_locate(*, sha256: str, key: str) -> bool:
    """Make the verified bytes at `key` the blob of `sha256`, unless that blob is stored already. Returns True when
    they became the blob; on False the caller deletes its copy. Reserve the digest first, as for `blob_put`."""
    if artifact_storage().exists(blob_key(sha256)):
        return False
    try:
        with transaction.atomic():
            BlobLocation.objects.create(sha256=sha256, key=key)
    except IntegrityError:  # another upload of the same bytes was located first, or this one by a completion racing
        return BlobLocation.objects.filter(sha256=sha256, key=key).exists()
    return True


def blob_is_located(*, key: str) -> bool:
    """Whether the object at `key` is a blob's location (so not an upload's leftovers to delete)."""
    return BlobLocation.objects.filter(key=key).exists()


def blob_put(*, sha256: str, content: File) -> bool:
    """Store `content` under its digest unless already there. Returns True when this call created the blob.

    Reserve the digest first (`blob_reserve`): a blob found here is only safe to reuse while it is reserved.
    """
    storage = artifact_storage()
    key = blob_key(sha256)
    if storage.exists(blob_storage_key(sha256)):
        return False
    saved = storage.save(key, content)
    if saved != key:
        # Another upload of the same bytes won the race; its copy is identical, so drop ours.
        storage.delete(saved)
        return False
    return True


def blob_exists(*, sha256: str) -> bool:
    """Whether the blob is stored (reserve it first, as for `blob_put`, for the answer to stay true)."""
    return artifact_storage().exists(blob_storage_key(sha256))


def blob_is_local() -> bool:
    return isinstance(artifact_storage(), FileSystemStorage)


def blob_chunks(sha256: str, *, start: int = 0, length: int | None = None) -> Iterator[bytes]:
    """The stored bytes of a blob, `length` of them (all by default) from `start`, in chunks of at most 1 MiB.

    Opened when first iterated, so a long list of these holds no file or connection open until its turn.
    """
    if length == 0:
        return
    yield from stored_chunks(blob_storage_key(sha256), start=start, length=length)


def stored_chunks(key: str, *, start: int = 0, length: int | None = None) -> Iterator[bytes]:
    """The bytes at a storage key (a blob's, or an upload's before it is one), as `blob_chunks` reads them. On S3 the
    object's body is read as it arrives: django-storages' S3File would first copy the whole object to a temporary file."""
    storage = artifact_storage()
    remaining = length
    if isinstance(storage, FileSystemStorage):
        with storage.open(key, "rb") as handle:
            handle.seek(start)
            while remaining is None or remaining > 0:
                chunk = handle.read(BLOB_CHUNK if remaining is None else min(BLOB_CHUNK, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        return
    byte_range = {} if start == 0 and length is None else {"Range": f"bytes={start}-{'' if length is None else start + length - 1}"}
    body = storage.bucket.Object(storage._normalize_name(key)).get(**byte_range)["Body"]
    try:
        yield from body.iter_chunks(BLOB_CHUNK)
    finally:
        body.close()


def blob_open(sha256: str) -> io.BufferedIOBase:
    """A stored blob as a seekable, read-only, buffered binary file.

    Local disk: the file itself. S3: ranged GETs of what is read (`S3RangedReader`), where django-storages' S3File
    would first download the whole object to a temporary file, so reading a header costs a header's bytes.
    Raises FileNotFoundError when the blob is not stored.
    """
    storage = artifact_storage()
    if isinstance(storage, FileSystemStorage):
        return storage.open(blob_key(sha256), "rb")
    return io.BufferedReader(S3RangedReader(storage, blob_storage_key(sha256)), RANGE_BUFFER)


@contextmanager
def _as_os_errors(key: str):
    """S3's failures as the OSErrors local disk raises: callers (the validation job's retry) tell them apart alike."""
    try:
        yield
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            raise FileNotFoundError(f"blob {key} is not in the bucket") from exc
        raise OSError(f"S3 could not read {key}: {exc}") from exc
    except BotoCoreError as exc:
        raise OSError(f"S3 could not read {key}: {exc}") from exc


class S3RangedReader(io.RawIOBase):
    """One S3 object as a raw, seekable, read-only file, through the storage's own client, bucket, prefix and
    download parameters (SSE-C keys).

    A read where the previous GET's range ended, or inside it, goes on reading that response's body; any other read
    opens a GET of exactly the bytes asked. Each GET that continues a finished one asks for twice as much (up to
    RANGE_GROWTH_LIMIT), so a whole-file read streams the object once in a few large GETs, while reads after seeks
    fetch only what they need. Storage errors are OSErrors (a missing object FileNotFoundError), as on local disk.
    """

    def __init__(self, storage, key: str):
        self.name = key
        self._object = storage.bucket.Object(storage._normalize_name(key))
        self._params = _filter_download_params(storage.get_object_parameters(key))
        with _as_os_errors(key):
            self._object.load(**self._params)
        self.size = self._object.content_length
        self._position = 0
        self._body = None
        self._body_position = self._body_end = 0  # the open body's next byte and the end of its range
        self._last_range = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise OSError(errno.EINVAL, f"negative seek position {base + offset}")  # as a file on disk: zipfile relies on it
        self._position = base + offset
        return self._position

    def readinto(self, buffer) -> int:
        wanted = min(len(buffer), self.size - self._position)
        if wanted <= 0:
            return 0
        if self._body is None or not self._body_position == self._position < self._body_end:
            sequential = self._body is not None and self._position == self._body_end
            length = max(wanted, min(2 * self._last_range, RANGE_GROWTH_LIMIT)) if sequential else wanted
            self._get(self._position, min(length, self.size - self._position))
        try:
            with _as_os_errors(self.name):
                data = self._body.read(min(wanted, self._body_end - self._position))
        except OSError:
            self._drop_body()
            raise
        if not data:
            self._drop_body()
            raise OSError(f"S3 ended {self.name} at byte {self._position} of {self.size}")
        memoryview(buffer)[: len(data)] = data
        self._position += len(data)
        self._body_position = self._position
        return len(data)

    def _get(self, start: int, length: int) -> None:
        self._drop_body()
        with _as_os_errors(self.name):
            response = self._object.get(Range=f"bytes={start}-{start + length - 1}", **self._params)
        self._body, self._body_position, self._body_end, self._last_range = response["Body"], start, start + length, length

    def _drop_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop_body()
        super().close()


def _lock_reservations(*, exclusive: bool) -> None:
    """Reservations take this lock shared, so they run side by side; a collection decision takes it exclusively.

    On SQLite every write transaction already holds the database's single write lock (BEGIN IMMEDIATE).
    """
    if connection.vendor == "postgresql":
        function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {function}(%s)", [RESERVATION_LOCK_KEY])


def blob_reserve(*, digests: list[str], until=None) -> list[int]:
    """Reserve blobs for a registration (or an upload session, `until` it expires), committed before it decides to reuse
    or store them. Returns the reservation ids.

    Call outside any transaction: the garbage collector must see the reservation before the registration looks
    at the store.
    """
    expires_at = until or timezone.now() + timedelta(seconds=settings.BLOB_RESERVATION_SECONDS)
    with transaction.atomic():
        _lock_reservations(exclusive=False)
        rows = BlobReservation.objects.bulk_create(BlobReservation(sha256=digest, expires_at=expires_at) for digest in sorted(set(digests)))
    return [row.pk for row in rows]


def blob_reservations_hold(*, ids: list[int]) -> None:
    """Inside the registration's transaction, right before it commits: lock its reservations, all still unexpired.

    The row locks make the garbage collector wait for this commit (and then see the artifact rows) instead of
    deciding while it is under way. Raises BlobReservationLost when a reservation expired or was collected.
    """
    held = BlobReservation.objects.select_for_update().filter(pk__in=ids, expires_at__gt=timezone.now()).values_list("pk", flat=True)
    if len(list(held)) != len(ids):
        raise BlobReservationLost(
            f"Storing the files took longer than the blob reservation ({settings.BLOB_RESERVATION_SECONDS} s), so the cleanup "
            "may have removed them; nothing was registered. Register the version again."
        )


def blob_reservations_release(*, ids: list[int]) -> None:
    """Drop a registration's reservations once its version committed (artifact rows protect the blobs) or failed."""
    try:
        BlobReservation.objects.filter(pk__in=ids).delete()
    except DatabaseError:
        # Called on the way out of a failed registration too, where the database may be the failure: a reservation
        # left behind only keeps its blob until it expires.
        logger.warning("Could not release blob reservations %s; they expire on their own", ids, exc_info=True)


def _walk(storage, directory: str):
    subdirs, files = storage.listdir(directory)
    for name in files:
        yield f"{directory}/{name}", name
    for sub in subdirs:
        yield from _walk(storage, f"{directory}/{sub}")


def orphan_blobs(*, older_than: timedelta):
    """Yield (key, digest) of stored blobs that no artifact references, no registration reserves, and that are older
    than the grace period: those under their digest's key and those located where an upload left them.

    A first pass over the whole store; `blob_collect_garbage` checks each one again under the lock before deleting it.
    """
    storage = artifact_storage()
    try:
        candidates = list(_walk(storage, BLOB_PREFIX))
    except FileNotFoundError:
        candidates = []
    cutoff = timezone.now() - older_than
    located = list(BlobLocation.objects.filter(created_at__lte=cutoff).values_list("key", "sha256"))
    digests = [digest for _, digest in candidates + located]
    kept = set()
    for start in range(0, len(digests), 1000):
        batch = digests[start : start + 1000]
        kept.update(Artifact.objects.filter(sha256__in=batch).values_list("sha256", flat=True))
        kept.update(BlobReservation.objects.filter(sha256__in=batch, expires_at__gt=timezone.now()).values_list("sha256", flat=True))
    for key, digest in candidates:
        if digest not in kept and storage.get_modified_time(key) <= cutoff:
            yield key, digest
    for key, digest in located:
        if digest not in kept:
            yield key, digest


def _blob_delete_if_unused(key: str, digest: str) -> bool:
    with transaction.atomic():
        _lock_reservations(exclusive=True)  # no reservation can commit from here until this decision is carried out
        reservations = list(BlobReservation.objects.select_for_update().filter(sha256=digest))  # waits for registrations committing
        if any(reservation.expires_at > timezone.now() for reservation in reservations):
            return False
        if Artifact.objects.filter(sha256=digest).exists():
            return False
        artifact_storage().delete(key)
        BlobLocation.objects.filter(sha256=digest, key=key).delete()
        BlobReservation.objects.filter(pk__in=[reservation.pk for reservation in reservations]).delete()
    return True


def blob_collect_garbage(*, older_than: timedelta) -> list[str]:
    """Delete blobs that no version uses and no registration reserves, older than the grace period. Returns their keys.

    Each deletion is decided and carried out under the reservation lock, so a registration that reserved the blob
    keeps it, however long it takes to commit (up to its reservation's expiry). Expired reservations are dropped.
    """
    deleted = [key for key, digest in list(orphan_blobs(older_than=older_than)) if _blob_delete_if_unused(key, digest)]
    for key in deleted:
        logger.info("Deleted unused blob %s", key)
    BlobReservation.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
