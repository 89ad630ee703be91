"""Upload spool files: where a request's files are written while they arrive, before registration stores them.

A spool file is normally gone when its request ends. Two ways one is not:
- The disk fills (or the write fails otherwise) midway. `HashingUploadHandler` deletes the spool at once and
  raises `SpoolWriteFailed`; `SpoolWriteFailedMiddleware` answers 507 (no space) or 503 (another write error)
  with what to do, as JSON under /api/ and as a page elsewhere.
- The process dies (SIGKILL, OOM) mid-body. Nothing in it can clean up, so `spool_sweep` (the cleanup command
  and its periodic task) removes spool files untouched for a grace period. The process writing a spool holds a
  shared `flock` on it for as long as it is open; the kernel drops the lock when that process dies, so a file whose
  lock can be taken has no live writer, and one that is still being written is never removed, however old.
"""

import errno
import fcntl
import logging
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string

from apps.web.errors import error_body

logger = logging.getLogger(__name__)
# Django's TemporaryUploadedFile names its files tmp<random>.upload<extension>.
SPOOL_GLOB = "tmp*.upload*"
NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
RETRY_AFTER_SECONDS = 60


class SpoolWriteFailed(Exception):
    """An upload could not be written to its spool file; the partial file is already deleted."""

    def __init__(self, cause: OSError):
        super().__init__(f"Upload spool write failed: {cause}")
        self.cause = cause

    @property
    def no_space(self) -> bool:
        return self.cause.errno in NO_SPACE


def spool_dir() -> Path:
    return Path(settings.FILE_UPLOAD_TEMP_DIR or tempfile.gettempdir())


def spool_claim(file) -> None:
    """Mark an open spool file as being written by this process (released when it is closed or the process dies)."""
    fcntl.flock(file.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)


def _remove_if_abandoned(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a live process is still writing it
            path.unlink()
    except FileNotFoundError:
        return False  # its request finished meanwhile
    return True


def spool_sweep(*, older_than: timedelta) -> list[Path]:
    """Remove spool files nobody writes any more and untouched for `older_than`. Returns the removed paths."""
    cutoff = time.time() - older_than.total_seconds()
    removed = []
    for path in sorted(spool_dir().glob(SPOOL_GLOB)):
        try:
            status = path.lstat()
        except FileNotFoundError:
            continue
        if not path.is_file() or path.is_symlink() or status.st_mtime > cutoff:
            continue
        if _remove_if_abandoned(path):
            logger.info("Removed abandoned upload spool file %s (%d bytes)", path, status.st_size)
            removed.append(path)
    return removed


def spool_failure_response(request, failure: SpoolWriteFailed) -> HttpResponse:
    """507 when the spool's disk is full, 503 for another write error: JSON under /api/, a page elsewhere."""
    if failure.no_space:
        status, code = 507, "insufficient_storage"
        message = (
            "The server ran out of disk space while receiving the upload. Nothing was registered and the partial upload "
            "was deleted. Try again later; if it happens again, tell an administrator (the upload spool directory is full)."
        )
    else:
        status, code = 503, "upload_write_failed"
        message = (
            f"The server could not write the upload to disk ({failure.cause.strerror or failure.cause}). Nothing was "
            "registered and the partial upload was deleted. Try again later, or tell an administrator."
        )
    if request.path.startswith("/api/"):
        response = JsonResponse(error_body(code, message), status=status)
    else:
        response = HttpResponse(render_to_string("versions/upload_failed.html", {"message": message}, request=request), status=status)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class SpoolWriteFailedMiddleware:
    """Answers an upload whose spool could not be written, wherever its body was parsed.

    In a view (the API, or a page view reading request.POST) `process_exception` answers. When another
    middleware parsed the body (CsrfViewMiddleware reads request.POST), Django has already turned the exception
    into a 500; the upload handler marked the request, and the 500 is replaced here. Place it before
    CsrfViewMiddleware.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        failure = getattr(request, "spool_write_failed", None)
        if failure is not None and response.status_code == 500:
            return spool_failure_response(request, failure)
        return response

    def process_exception(self, request, exception):
        if isinstance(exception, SpoolWriteFailed):
            return spool_failure_response(request, exception)
        return None
