"""Streaming uploads: every file goes to a temporary file while its SHA-256 and size are computed on the fly."""

import hashlib
import logging
from pathlib import Path

from django.conf import settings
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler

from .middleware import is_upload_route
from .spool import SpoolWriteFailed, spool_claim, spool_dir

logger = logging.getLogger(__name__)


class HashingUploadHandler(TemporaryFileUploadHandler):
    chunk_size = 1024 * 1024

    def new_file(self, *args, **kwargs):
        if not is_upload_route(self.request):
            # Only the upload routes take files, and only after UploadGateMiddleware (or the API view) authorized the
            # caller. Anywhere else (CSRF parsing a stranger's POST, say) stop parsing instead of spooling to disk.
            raise StopUpload(connection_reset=True)
        try:
            super().new_file(*args, **kwargs)
            spool_claim(self.file)
        except OSError as exc:
            self._spool_failed(exc)
        self._hasher = hashlib.sha256()
        self._received = 0
        self._oversized = False

    def receive_data_chunk(self, raw_data, start):
        self._received += len(raw_data)
        if self._received > settings.ARTIFACT_MAX_FILE_BYTES:
            # Keep reading the request but stop writing; registration reports the file as too large.
            self._oversized = True
            return None
        self._hasher.update(raw_data)
        try:
            return super().receive_data_chunk(raw_data, start)
        except OSError as exc:  # ENOSPC, EDQUOT, EIO, ...
            self._spool_failed(exc)

    def file_complete(self, file_size):
        try:
            uploaded = super().file_complete(file_size)  # its seek(0) flushes the last buffered bytes
        except OSError as exc:
            self._spool_failed(exc)
        uploaded.sha256 = self._hasher.hexdigest()
        uploaded.oversized = self._oversized
        uploaded.received_bytes = self._received
        return uploaded

    def upload_interrupted(self):
        """Close and delete the spool file now (the body ended midway, or writing failed), not when the garbage collector gets to it."""
        file = getattr(self, "file", None)
        if file is None:
            return
        path = file.temporary_file_path()
        try:
            file.close()
        except OSError:
            pass  # flushing onto a full disk fails, but the descriptor is closed all the same
        Path(path).unlink(missing_ok=True)

    def _spool_failed(self, cause: OSError):
        logger.warning("Upload spool write failed in %s (%s); partial file deleted", spool_dir(), cause)
        self.upload_interrupted()
        self._failure = self.request.spool_write_failed = SpoolWriteFailed(cause)
        # Django then closes the files and reads (discards) the rest of the body, so the client gets the answer,
        # and calls upload_complete, which raises for the view or middleware that asked for the body.
        raise StopUpload(connection_reset=False)

    def upload_complete(self):
        failure = getattr(self, "_failure", None)
        if failure is not None:
            raise failure
