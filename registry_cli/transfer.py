"""Downloads that resume, check every byte and never leave a half-written file under a final name.

A download goes into a partial file (appended to where a previous attempt stopped, with Range and If-Range), is
checked against the SHA-256 the registry declared (in the manifest, or in the X-Checksum-SHA256 header of its
answer, also when that answer is a redirect to S3), and only then renamed into place. Local problems (permissions,
a full disk, a file where a folder should be) are LocalFileError and say so; only the connection is the network's.
"""

import base64
import hashlib
import http.client
import os
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from .client import CliError, Client, answer_error, connection_for

CACHE_VARIABLE = "REGISTRY_CACHE_DIR"
CHUNK = 1024 * 1024
REDIRECTS = (301, 302, 303, 307, 308)


class LocalFileError(CliError):
    """A local file or folder could not be read or written: not the registry's fault, not worth a retry."""


def local_error(doing: str, path: Path, exc: OSError) -> LocalFileError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return LocalFileError(f"Could not {doing} {path}: {reason}. Check the folder's permissions and free space; nothing was sent or changed on the registry.")


class ChecksumMismatch(CliError):
    pass


def cache_root(environ) -> Path:
    """The CLI's cache folder (pull's content cache, upload sessions' state): $REGISTRY_CACHE_DIR, else
    $XDG_CACHE_HOME/model-registry, else ~/.cache/model-registry."""
    if environ.get(CACHE_VARIABLE):
        return Path(environ[CACHE_VARIABLE])
    base = Path(environ["XDG_CACHE_HOME"]) if environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "model-registry"


def sha256_of(path: Path) -> str:
    hasher = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                hasher.update(chunk)
    except OSError as exc:
        raise local_error("read", path, exc) from exc
    return hasher.hexdigest()


class Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, total: int, label: str, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = total > 0 and self.stream.isatty()
        self.total, self.label, self.done, self.shown = total, label, 0, 0.0
        self.lock = threading.Lock()  # downloads running side by side advance it

    def advance(self, count: int) -> None:
        with self.lock:
            self.done += count
            now = time.monotonic()
            if self.enabled and (now - self.shown > 0.1 or self.done >= self.total):
                self.shown = now
                share = min(1.0, self.done / self.total)
                bar = "#" * int(share * 30)
                self.stream.write(f"\r{self.label} [{bar:<30}] {self.done / 1e6:,.1f}/{self.total / 1e6:,.1f} MB {share:4.0%}")
                self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.shown:
            self.stream.write("\n")
            self.stream.flush()


def _open_partial(partial: Path):
    try:
        partial.parent.mkdir(parents=True, exist_ok=True)
        return open(partial, "ab+")
    except OSError as exc:
        raise local_error("write", partial, exc) from exc


def _prefix_hash(handle, partial: Path) -> tuple["hashlib._Hash", int]:
    hasher, size = hashlib.sha256(), 0
    try:
        handle.seek(0)
        while chunk := handle.read(CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    except OSError as exc:
        raise local_error("read", partial, exc) from exc
    return hasher, size


def _get(client: Client, api_path: str, offset: int, sha256: str | None):
    """GET the artifact from `offset`, following a redirect to the store without our token. Returns (connection,
    response, the SHA-256 the registry declared)."""
    headers = {"Accept": "*/*"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if sha256:
            headers["If-Range"] = f'"{sha256}"'  # a different file than the partial's: send it whole
    connection, response = client.open(api_path, headers=headers)
    declared = response.getheader("X-Checksum-SHA256")
    if response.status not in REDIRECTS:
        if response.status >= 400 and response.status != 416:
            try:
                raise answer_error(response)
            finally:
                connection.close()
        return connection, response, declared
    location = response.getheader("Location")
    connection.close()
    parts = urlsplit(location)
    connection = connection_for(parts)
    try:
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers={"Range": f"bytes={offset}-"} if offset else {})
        response = connection.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        connection.close()
        raise client.unreachable(exc) from exc
    if response.status >= 400 and response.status != 416:
        connection.close()
        raise CliError(f"The artifact store refused the download ({response.status}); run the command again (the link may have expired).")
    if declared and _s3_checksum(response) not in (None, declared):
        connection.close()
        raise ChecksumMismatch(f"The artifact store holds other bytes than the registry declared (SHA-256 {declared}); nothing was saved.")
    return connection, response, declared


def _s3_checksum(response) -> str | None:
    """S3's own SHA-256 of the whole object, when it was stored with one (not a multipart upload's checksum of parts,
    written `<base64>-<parts>`, nor for a range)."""
    value = response.getheader("x-amz-checksum-sha256") or ""
    try:
        return base64.b64decode(value, validate=True).hex() if value and "-" not in value and response.status == 200 else None
    except ValueError:
        return None


def download(client: Client, api_path: str, partial: Path, *, name: str, sha256: str | None = None, size: int | None = None, progress=None) -> tuple[str, int]:
    """Download an artifact into `partial` (resuming what it holds), check it, and return (sha256, size).

    `sha256`/`size` are what the manifest says; without them the registry's X-Checksum-SHA256 header is the
    reference. On a mismatch the partial file is deleted and ChecksumMismatch raised; when the download had resumed
    a partial file, that file may have been the damaged part, so it is downloaded once more from the start first.
    The caller renames the partial file into place on success.
    """
    with _open_partial(partial) as handle:
        _lock(handle)
        hasher, offset = _prefix_hash(handle, partial)
        if size is not None and offset > size:
            handle.truncate(0)
            hasher, offset = hashlib.sha256(), 0
        got, length, expected = _fill(client, api_path, handle, hasher, offset, partial, name=name, sha256=sha256, size=size, progress=progress)
        if offset and (got != expected or (size is not None and length != size)):
            handle.truncate(0)
            got, length, expected = _fill(client, api_path, handle, hashlib.sha256(), 0, partial, name=name, sha256=sha256, size=size, progress=None)
    if got != expected or (size is not None and length != size):
        _remove(partial)
        raise ChecksumMismatch(f"{name}: SHA-256 mismatch (expected {expected}, received {got}, {length} bytes); the download was discarded.")
    return got, length


def _fill(client: Client, api_path: str, handle, hasher, offset: int, partial: Path, *, name: str, sha256, size, progress) -> tuple[str, int, str]:
    """Append the rest of the artifact to `handle` (which holds `offset` bytes hashed into `hasher`). Returns (the
    SHA-256 of what the file holds, its size, the SHA-256 it should have)."""
    expected = sha256
    if size is None or offset < size:
        connection, response, declared = _get(client, api_path, offset, sha256)
        try:
            if sha256 and declared and declared != sha256:
                raise ChecksumMismatch(f"{name}: the registry now serves SHA-256 {declared}, not {sha256} as its manifest says; run the command again.")
            expected = sha256 or declared
            if response.status == 416 or (offset and not _resumes_at(response, offset)):
                handle.truncate(0)  # the partial was of other bytes, or the server ignored the range: start over
                hasher, offset = hashlib.sha256(), 0
                if response.status == 416:
                    connection.close()
                    connection, response, declared = _get(client, api_path, 0, sha256)
            if progress is not None and offset:
                progress.advance(offset)
            _copy(client, response, handle, hasher, partial, progress)
        finally:
            connection.close()
    if expected is None:
        raise CliError(f"{name}: the registry did not declare a SHA-256 for it, so it cannot be checked; nothing was saved.")
    return hasher.hexdigest(), handle.tell(), expected


def _resumes_at(response, offset: int) -> bool:
    """A 206 whose Content-Range starts where the partial file ends."""
    content_range = response.getheader("Content-Range") or ""
    return response.status == 206 and content_range.startswith(f"bytes {offset}-")


def _copy(client: Client, response, handle, hasher, partial: Path, progress) -> None:
    handle.seek(0, os.SEEK_END)
    while True:
        try:
            chunk = response.read(CHUNK)
        except (OSError, http.client.HTTPException) as exc:
            raise client.unreachable(exc) from exc  # what arrived is kept: the retry resumes from there
        if not chunk:
            return
        hasher.update(chunk)
        try:
            handle.write(chunk)
        except OSError as exc:
            raise local_error("write", partial, exc) from exc
        if progress is not None:
            progress.advance(len(chunk))


def _lock(handle) -> None:
    """Two pulls of the same file take turns on its partial file (POSIX; elsewhere they are not serialised)."""
    try:
        import fcntl
    except ImportError:
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def place(source: Path, target: Path, *, link: bool) -> None:
    """Put a checked file at `target` atomically (a temporary name beside it, then a rename): a hard link to
    `source` when `link` and the file system allows, else a copy."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove(temporary)
        try:
            if not link:
                raise OSError
            os.link(source, temporary)
        except OSError:
            with open(source, "rb") as reading, open(temporary, "wb") as writing:
                while chunk := reading.read(CHUNK):
                    writing.write(chunk)
        os.replace(temporary, target)
    except OSError as exc:
        _remove(temporary)
        raise local_error("write", target, exc) from exc
