"""A whole version as one zip or tar, streamed: every file under its path plus the manifest, no temporary file.

Each file is read from the store in 1 MiB chunks while the archive is sent (`stored_chunks`), and its SHA-256 is
checked on the way: if the stored bytes no longer match the manifest the stream stops there, so the client gets a
truncated archive it cannot mistake for a good one (and the log says which blob is damaged). Sizes are known
beforehand, so both formats answer with a Content-Length. Files are stored uncompressed: model weights barely
compress, and deflating them would cost the server CPU on every pull.
"""

import hashlib
import logging
import tarfile
import time
from collections.abc import Iterator

from django.db import models
from zipstream import ZIP_STORED, ZipStream

from .blobs import blob_storage_keys, stored_chunks
from .manifest import manifest_json, manifest_name

logger = logging.getLogger(__name__)
TAR_BLOCK = tarfile.BLOCKSIZE
TAR_RECORD = tarfile.RECORDSIZE


class ArchiveFormat(models.TextChoices):
    ZIP = "zip", "zip"
    TAR = "tar", "tar"


class BlobDamaged(OSError):
    """A stored blob no longer matches its SHA-256 (or size): the archive stops before it would carry wrong bytes."""


def _verified_chunks(entry: dict, key: str) -> Iterator[bytes]:
    hasher, size = hashlib.sha256(), 0
    for chunk in stored_chunks(key):
        hasher.update(chunk)
        size += len(chunk)
        yield chunk
    if size != entry["size"] or hasher.hexdigest() != entry["sha256"]:
        logger.error("Stored blob %s of %s is damaged (%d bytes read, %d expected); archive stopped", entry["sha256"], entry["path"], size, entry["size"])
        raise BlobDamaged(f"The stored copy of {entry['path']} does not match its SHA-256.")


def _zip(manifest: dict) -> tuple[Iterator[bytes], int]:
    archive = ZipStream(compress_type=ZIP_STORED, sized=True)
    archive.add(manifest_json(manifest), manifest_name(manifest))
    keys = blob_storage_keys([entry["sha256"] for entry in manifest["files"]])
    for entry in manifest["files"]:
        archive.add(_verified_chunks(entry, keys[entry["sha256"]]), entry["path"], size=entry["size"])
    return iter(archive), len(archive)


def _tar_header(name: str, size: int, mtime: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o644
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")  # PAX: paths of any length


def _tar(manifest: dict) -> tuple[Iterator[bytes], int]:
    # tarfile's streaming mode would copy each whole file through one write call; writing the blocks here lets the
    # response send each chunk as it is read.
    mtime = int(time.time())
    document = manifest_json(manifest)
    members = [(_tar_header(manifest_name(manifest), len(document), mtime), len(document), lambda: iter([document]))]
    keys = blob_storage_keys([entry["sha256"] for entry in manifest["files"]])
    members += [
        (_tar_header(entry["path"], entry["size"], mtime), entry["size"], lambda entry=entry: _verified_chunks(entry, keys[entry["sha256"]]))
        for entry in manifest["files"]
    ]
    body = sum(len(header) + size + (-size) % TAR_BLOCK for header, size, _ in members) + 2 * TAR_BLOCK
    length = body + (-body) % TAR_RECORD

    def chunks() -> Iterator[bytes]:
        for header, size, content in members:
            yield header
            yield from content()
            yield b"\0" * ((-size) % TAR_BLOCK)
        yield b"\0" * (length - body + 2 * TAR_BLOCK)

    return chunks(), length


def archive_stream(manifest: dict, archive_format: ArchiveFormat) -> tuple[Iterator[bytes], int]:
    """The archive's bytes as an iterator and its exact length."""
    return _tar(manifest) if archive_format == ArchiveFormat.TAR else _zip(manifest)
