"""Upload sessions: a version's files arrive before registration, resumably, and never as bytes that differ from
what was declared. The session rows are in `models.py`; creating and registering a session (which check the metadata
and write the version) are in `apps.catalog.upload_sessions`.

Two ways for the bytes, picked by the artifact store:
- S3 (any S3-compatible store): one multipart upload per file, at a key of its own for each attempt
  (`uploads/<session>/<index>-<random>`); the client gets presigned part URLs (each bound to the part's SHA-256 when it
  gives one, which S3 then enforces) and sends the parts straight to the bucket, retrying or resuming any part
  (ListParts says which arrived). Completion checks the parts, completes the upload and reads the object back once,
  streamed, to hash it: S3 keeps only composite checksums for multipart objects, so no store can vouch for the full
  SHA-256. Bytes with the expected digest stay where they are, as their blob's location (`blobs.blob_locate`): no
  server-side copy of every byte, which costs as much as the upload on some stores. Other bytes are deleted.
- Local disk: tus-style offsets through the server (PATCH with Upload-Offset appends, HEAD tells the offset),
  written to a spool file under an exclusive `flock` and hashed as they arrive.

Verified bytes are stored at once (on local disk under their digest, on S3 where they landed), with a blob reservation
lasting as long as the session, so the garbage collector keeps them until the session registers (artifact rows then
keep them) or expires (then they are collected like any unused blob). Bytes that do not match the declared SHA-256 are discarded and the file starts over.

A file may be declared without its SHA-256 (the client hashes while it sends): its digest is then fixed when it is
completed, by the SHA-256 the client sends then, which must be the one the registry computed; a mismatch un-stores the
file (409 checksum_mismatch, sent again from the start). Such a file is never deduplicated: dedup needs the digest up
front, and only ever for blobs the caller could already read (`apps.catalog.upload_sessions`).
"""

import base64
import fcntl
import hashlib
import logging
import os
import queue
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable
from contextlib import suppress
from datetime import datetime
from functools import partial
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from .blobs import artifact_storage, blob_is_local, blob_is_located, blob_locate, blob_put, blob_reserve, stored_chunks
from .models import UploadFileStatus, UploadSession, UploadSessionFile
from .spool import SpoolWriteFailed, spool_dir

logger = logging.getLogger(__name__)
CHUNK = 1024 * 1024
S3_MIN_PART_BYTES = 5 * 1024 * 1024
S3_MAX_PARTS = 10_000
UPLOAD_PREFIX = "uploads"


class UploadConflict(Exception):
    """A request that does not fit the file's state (wrong offset, a second writer, a mismatch): HTTP 409."""

    def __init__(self, code: str, message: str, offset: int | None = None):
        super().__init__(message)
        self.code, self.offset = code, offset


# --- where the bytes go -------------------------------------------------------------------------------------------


def part_size_for(size: int) -> int:
    """Parts of UPLOAD_PART_BYTES, larger when a file would need more than S3's 10,000 parts (whole MiB)."""
    needed = -(-size // S3_MAX_PARTS)
    return max(settings.UPLOAD_PART_BYTES, -(-needed // CHUNK) * CHUNK)


def part_count(file: UploadSessionFile) -> int:
    return max(1, -(-file.size // file.part_size))


def _spool_path(file: UploadSessionFile) -> Path:
    return spool_dir() / f"session-{file.session_id}-{file.index}.part"


def _s3():
    storage = artifact_storage()
    return storage, storage.bucket.meta.client, storage.bucket_name


def _s3_key(storage, key: str) -> str:
    return storage._normalize_name(key)  # the configured prefix (ARTIFACT_S3_PREFIX) in front


def session_files_prepare(files: list[UploadSessionFile]) -> None:
    """Give each pending file its part size, and on S3 its multipart upload."""
    for file in files:
        file.part_size = part_size_for(file.size)
        if file.status == UploadFileStatus.PENDING and not blob_is_local():
            _upload_open(file)


def _upload_open(file: UploadSessionFile) -> None:
    """A fresh multipart upload (with SHA-256 part checksums) at a new key: a file sent again never lands on the key of
    an earlier attempt, whose bytes may have become a blob. The caller saves the file's row."""
    storage, client, bucket = _s3()
    file.upload_key = f"{UPLOAD_PREFIX}/{file.session_id}/{file.index}-{secrets.token_hex(8)}"
    file.upload_id = client.create_multipart_upload(Bucket=bucket, Key=_s3_key(storage, file.upload_key), ChecksumAlgorithm="SHA256")["UploadId"]


# --- local disk: tus-style offsets ----------------------------------------------------------------------------------

# The SHA-256 state of each file being received, so the next PATCH continues it without reading the spool again.
# Python cannot persist a hash state, so a PATCH that lands in another process (or after a restart) rebuilds it by
# reading the spooled prefix once: a local read, far cheaper than sending the bytes again. A state is keyed by the
# spool file as this process left it (inode, size, modification time), not by the offset alone: after a mismatch
# restarted the file in another process, a state of the first attempt's bytes would otherwise hash bytes the spool
# no longer holds, and store the spool's bytes under a digest they do not have.
_hashers: "OrderedDict[tuple, object]" = OrderedDict()
_hashers_lock = threading.Lock()
_HASHERS_KEPT = 64


def _spool_state(file_id: int, handle) -> tuple:
    stat = os.fstat(handle.fileno())
    return file_id, stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def _hasher_take(file_id: int, offset: int, handle) -> "hashlib._Hash":
    with _hashers_lock:
        hasher = _hashers.pop(_spool_state(file_id, handle), None)
    if hasher is not None:
        return hasher
    hasher = hashlib.sha256()
    handle.seek(0)
    remaining = offset
    while remaining:
        chunk = handle.read(min(CHUNK, remaining))
        if not chunk:
            break
        hasher.update(chunk)
        remaining -= len(chunk)
    return hasher


def _hasher_keep(file_id: int, handle, hasher) -> None:
    with _hashers_lock:
        _hashers[_spool_state(file_id, handle)] = hasher
        while len(_hashers) > _HASHERS_KEPT:
            _hashers.popitem(last=False)


def file_offset(file: UploadSessionFile) -> int:
    """How many bytes of the file the registry holds: its size once stored, else what the spool holds (local disk)."""
    if file.status == UploadFileStatus.STORED:
        return file.size
    try:
        return _spool_path(file).stat().st_size
    except FileNotFoundError:
        return 0


def file_receive(*, file: UploadSessionFile, offset: int, length: int, read) -> int:
    """Append `length` bytes read with `read(n)` at `offset` (which must be what the registry holds). Returns the new offset.

    The bytes are hashed as they arrive. A body cut short keeps what arrived (the client asks HEAD and goes on). When the
    file is whole it is checked against its declared SHA-256 and stored (`UploadConflict` and a fresh start if not).
    """
    if file.status == UploadFileStatus.STORED:
        raise UploadConflict("already_stored", f"{file.path} is already stored; nothing more to send.", offset=file.size)
    if offset + length > file.size:
        raise ValidationError({"Upload-Offset": [f"{offset} + {length} bytes would pass the declared size of {file.path} ({file.size} bytes)."]})
    path = _spool_path(file)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Unbuffered: after a failed write nothing waits in a buffer to be written when the file closes.
    with open(path, "ab+", buffering=0) as handle:
        _spool_lock(file, handle)
        if file.status == UploadFileStatus.STORED:  # a completion finished it meanwhile; `open` made an empty spool
            path.unlink(missing_ok=True)
            raise UploadConflict("already_stored", f"{file.path} is already stored; nothing more to send.", offset=file.size)
        _spool_check(file, path, handle)
        held = os.fstat(handle.fileno()).st_size
        if offset != held:
            raise UploadConflict("offset_mismatch", f"The registry holds {held} bytes of {file.path}, not {offset}; send from {held}.", offset=held)
        hasher = _BackgroundHasher(_hasher_take(file.pk, held, handle))
        handle.seek(held)
        received = 0
        try:
            while received < length:
                try:
                    chunk = read(min(CHUNK, length - received))
                except OSError:  # the client went away mid-body (a write error, below, is the server's)
                    chunk = b""
                if not chunk:
                    logger.info("Upload of %s cut at %d bytes; the client resumes from there", file.path, held + received)
                    break
                _write_all(handle, chunk)
                hasher.update(chunk)
                received += len(chunk)
        except OSError as exc:  # the disk is full (or failed): drop this request's bytes, keep what earlier ones sent
            os.ftruncate(handle.fileno(), held)
            raise SpoolWriteFailed(exc) from exc
        finally:
            hasher = hasher.result()
        _hasher_keep(file.pk, handle, hasher)
        offset = held + received
        if offset == file.size:
            _file_finish(file, hasher.hexdigest(), content=handle, local_path=path)
    return offset


class _BackgroundHasher:
    """Feeds a hash on a thread of its own, so hashing a chunk overlaps receiving and writing the next ones (hashlib
    and the socket and file calls all let go of the GIL): one request's bytes use both of two cores."""

    def __init__(self, hasher):
        self._hasher = hasher
        self._chunks: queue.Queue = queue.Queue(maxsize=8)
        self._thread = threading.Thread(target=self._run, name="upload-hasher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            self._hasher.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._chunks.put(chunk)

    def result(self):
        """The hash of every chunk given, once the thread has taken them all in."""
        self._chunks.put(None)
        self._thread.join()
        return self._hasher


def _write_all(handle, chunk: bytes) -> None:
    view = memoryview(chunk)
    while view:
        view = view[handle.write(view) :]


def _spool_lock(file: UploadSessionFile, handle) -> None:
    """Take the file's spool lock (one writer or finisher at a time), then read its status as the last holder left it."""
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UploadConflict(
            "upload_in_progress", f"Another request is sending or finishing {file.path}; wait for it, then ask HEAD for the offset or complete again."
        ) from None
    _status_reload(file)


def _status_reload(file: UploadSessionFile) -> None:
    file.status, file.sha256 = UploadSessionFile.objects.filter(pk=file.pk).values_list("status", "sha256").get()


def _spool_check(file: UploadSessionFile, path: Path, handle) -> None:
    """The locked handle is still the file's spool (not one a finished or discarded request moved or deleted meanwhile)."""
    try:
        named = path.stat()
    except FileNotFoundError:
        named = None
    held = os.fstat(handle.fileno())
    if named is None or (named.st_dev, named.st_ino) != (held.st_dev, held.st_ino):
        raise UploadConflict("upload_in_progress", f"Another request changed {file.path} meanwhile; ask HEAD for the offset and go on from there.")


# --- S3: presigned multipart parts ----------------------------------------------------------------------------------


def file_part_urls(*, file: UploadSessionFile, parts: list[tuple[int, str | None]]) -> list[dict]:
    """Presigned URLs for parts (number, SHA-256 hex or None). A URL with a digest only accepts bytes with that digest:
    the client sends the header given with it, which the signature covers, and S3 checks the part against it."""
    if file.status == UploadFileStatus.STORED:
        raise UploadConflict("already_stored", f"{file.path} is already stored; nothing more to send.")
    if blob_is_local():
        raise UploadConflict("wrong_protocol", "The registry stores artifacts on local disk: send the bytes with PATCH and Upload-Offset.")
    count = part_count(file)
    storage, client, bucket = _s3()
    urls = []
    for number, digest in parts:
        if not 1 <= number <= count:
            raise ValidationError({"parts": [f"{file.path} has parts 1 to {count} ({file.part_size} bytes each, the last one shorter)."]})
        params = {"Bucket": bucket, "Key": _s3_key(storage, file.upload_key), "UploadId": file.upload_id, "PartNumber": number}
        headers = {}
        if digest:
            checksum = base64.b64encode(bytes.fromhex(digest)).decode()
            params["ChecksumSHA256"] = headers["x-amz-checksum-sha256"] = checksum
        url = client.generate_presigned_url("upload_part", Params=params, ExpiresIn=settings.UPLOAD_PART_URL_EXPIRY_SECONDS)
        urls.append({"number": number, "url": url, "headers": headers, "size": _part_length(file, number)})
    return urls


def _part_length(file: UploadSessionFile, number: int) -> int:
    return min(file.part_size, file.size - (number - 1) * file.part_size)


def file_uploaded_parts(file: UploadSessionFile) -> list[dict]:
    """The parts S3 holds for the file (number and size), so a client that restarted sends only the others."""
    if file.status == UploadFileStatus.STORED or blob_is_local() or not file.upload_id:
        return []
    storage, client, bucket = _s3()
    parts, marker = [], 0
    while True:
        page = client.list_parts(Bucket=bucket, Key=_s3_key(storage, file.upload_key), UploadId=file.upload_id, PartNumberMarker=marker)
        parts.extend({"number": p["PartNumber"], "size": p["Size"], "etag": p["ETag"], "sha256": p.get("ChecksumSHA256")} for p in page.get("Parts", ()))
        if not page.get("IsTruncated"):
            return parts
        marker = page["NextPartNumberMarker"]


def file_complete(*, file: UploadSessionFile, sha256: str = "") -> None:
    """Check that the whole file arrived, then verify its SHA-256 and store it.

    `sha256` is the client's digest of what it sent: the stored bytes must have it too (as they must have a declared
    one). A stored file is left as it is when it matches, and un-stored (sent again from the start) when it does not.
    """
    if file.status == UploadFileStatus.STORED:
        if sha256 and sha256 != file.sha256:
            _file_unstore(file, sha256)
        return
    if blob_is_local():
        _local_complete(file, sha256)
        return
    _s3_complete(file, sha256)


def _mismatch(file: UploadSessionFile, digest: str, expected: str) -> UploadConflict:
    return UploadConflict(
        "checksum_mismatch",
        f"The bytes received for {file.path} have SHA-256 {digest}, not the {expected} the client gave. They were "
        "discarded; send the file again from the start.",
        offset=0,
    )


def _file_unstore(file: UploadSessionFile, expected: str) -> None:
    """A stored file whose client now says it sent other bytes: back to pending, on S3 under a new upload key (the blob
    it made stays, reserved until the session expires, then collected like any unused blob)."""
    digest = file.sha256
    if not blob_is_local():
        _upload_open(file)
    UploadSessionFile.objects.filter(pk=file.pk).update(
        sha256="", status=UploadFileStatus.PENDING, deduplicated=False, upload_id=file.upload_id, upload_key=file.upload_key
    )
    file.sha256, file.status, file.deduplicated = "", UploadFileStatus.PENDING, False
    raise _mismatch(file, digest, expected)


def _local_complete(file: UploadSessionFile, expected: str) -> None:
    """Finish a whole spool whose finishing request died (hash it again), under the lock its writer holds: a completion
    racing the last PATCH answers 409 upload_in_progress at once, or finds the file stored and does nothing."""
    path = _spool_path(file)
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        handle = None
    if handle is None:
        _status_reload(file)
        if file.status == UploadFileStatus.STORED:
            return
        raise UploadConflict("incomplete", f"The registry holds 0 of {file.size} bytes of {file.path}; send it from 0.", offset=0)
    with handle:
        _spool_lock(file, handle)
        if file.status == UploadFileStatus.STORED:
            return
        _spool_check(file, path, handle)
        held = os.fstat(handle.fileno()).st_size
        if held != file.size:
            raise UploadConflict("incomplete", f"The registry holds {held} of {file.size} bytes of {file.path}; send the rest from {held}.", offset=held)
        _file_finish(file, _sha256_of(iter(partial(handle.read, CHUNK), b"")), expected=expected, content=handle, local_path=path)


def _s3_complete(file: UploadSessionFile, expected: str) -> None:
    storage, client, bucket = _s3()
    key = _s3_key(storage, file.upload_key)
    try:
        parts = file_uploaded_parts(file)
        count = part_count(file)
        missing = sorted(set(range(1, count + 1)) - {p["number"] for p in parts})
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
            raise UploadConflict("incomplete", f"{file.path} still lacks parts {shown} (of {count}); send them, then complete again.")
        wrong = [p["number"] for p in parts if p["size"] != _part_length(file, p["number"])]
        if wrong:
            _s3_restart(file)
            raise UploadConflict("part_size_mismatch", f"Parts {wrong} of {file.path} do not have the sizes the session gave; the file was discarded, send it again.")
        client.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=file.upload_id,
            MultipartUpload={"Parts": [{"PartNumber": p["number"], "ETag": p["etag"], **({"ChecksumSHA256": p["sha256"]} if p["sha256"] else {})} for p in parts]},
        )
    except client.exceptions.NoSuchUpload:  # completed already: by a completion racing this one, or one that failed after
        _status_reload(file)
        if file.status == UploadFileStatus.STORED:
            return
        if not artifact_storage().exists(file.upload_key):
            raise UploadConflict("upload_in_progress", f"Another request is finishing {file.path}; wait for it, then complete again.") from None
    try:
        digest = _sha256_of(stored_chunks(file.upload_key))  # read back once, streamed
        _file_finish(file, digest, expected=expected, s3_key=file.upload_key)
    except UploadConflict:
        _s3_restart(file)
        raise


def _s3_restart(file: UploadSessionFile) -> None:
    """Discard what arrived for the file and open a fresh multipart upload for it, at a new key."""
    _upload_discard(file)
    _upload_open(file)
    file.save(update_fields=["upload_id", "upload_key"])


def _upload_discard(file: UploadSessionFile) -> None:
    """Abort the file's multipart upload and delete the object it made, unless a completion of the same file (racing
    the caller) made that object a blob."""
    storage, client, bucket = _s3()
    key = _s3_key(storage, file.upload_key)
    with suppress(client.exceptions.NoSuchUpload):  # completed or aborted already
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=file.upload_id)
    if not blob_is_located(key=file.upload_key):
        client.delete_object(Bucket=bucket, Key=key)


def _sha256_of(chunks: Iterable[bytes]) -> str:
    hasher = hashlib.sha256()
    for chunk in chunks:
        hasher.update(chunk)
    return hasher.hexdigest()


# --- storing verified bytes ------------------------------------------------------------------------------------------


class _SpoolFile(File):
    """A finished spool file: FileSystemStorage moves a file that has a temporary path instead of copying it."""

    def __init__(self, handle, path: Path):
        super().__init__(handle, name=path.name)
        self._path = path

    def temporary_file_path(self) -> str:
        return str(self._path)


def _file_finish(
    file: UploadSessionFile, digest: str, *, expected: str = "", content=None, local_path: Path | None = None, s3_key: str | None = None
) -> None:
    """Store bytes whose SHA-256 is `digest` as the file's blob, or discard them when they are not what was declared
    (or what the client says it sent: `expected`). The bytes are in `content` at `local_path`, or at `s3_key`."""
    for wanted in (file.declared_sha256, expected):
        if wanted and digest != wanted:
            if local_path is not None:
                local_path.unlink(missing_ok=True)
            raise _mismatch(file, digest, wanted)
    session = file.session
    # Reserved until the session expires (committed before the store is looked at, like a registration's reservations).
    blob_reserve(digests=[digest], until=session.expires_at)
    if s3_key is not None:
        if not blob_locate(sha256=digest, key=s3_key):
            artifact_storage().delete(s3_key)  # the blob is stored already: these bytes are a second copy
    else:
        content.seek(0)
        blob_put(sha256=digest, content=_SpoolFile(content, local_path))
        local_path.unlink(missing_ok=True)  # moved already, or a copy of a blob that was there
    _file_stored(file, digest)


def _file_stored(file: UploadSessionFile, digest: str) -> None:
    with transaction.atomic():
        UploadSessionFile.objects.filter(pk=file.pk).update(sha256=digest, status=UploadFileStatus.STORED)
    file.sha256, file.status = digest, UploadFileStatus.STORED


# --- cleanup ----------------------------------------------------------------------------------------------------------


def session_discard(session: UploadSession) -> None:
    """Remove what a session left in the spool or the bucket (its stored blobs stay: reservations or artifacts keep them)."""
    local = blob_is_local()
    for file in session.files.exclude(status=UploadFileStatus.STORED):
        if local:
            _spool_path(file).unlink(missing_ok=True)
        elif file.upload_key:
            _upload_discard(file)


def upload_sessions_sweep(*, now: datetime | None = None) -> int:
    """Delete expired sessions with what they left behind. Their reservations expire with them, so blobs that no
    version took are collected like any unused blob. Returns how many sessions were deleted."""
    now = now or timezone.now()
    deleted = 0
    for session in UploadSession.objects.filter(expires_at__lte=now).iterator():
        try:
            session_discard(session)
        except Exception:  # a storage hiccup: leave the row, the next sweep tries again
            logger.warning("Could not clean up upload session %s; trying again at the next sweep", session.pk, exc_info=True)
            continue
        session.delete()
        deleted += 1
    if deleted:
        logger.info("Deleted %d expired upload sessions", deleted)
    return deleted
