"""Streaming uploads: every file goes to a temporary file while its SHA-256 and size are computed on the fly."""

import hashlib

from django.conf import settings
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler

from .middleware import is_upload_route


class HashingUploadHandler(TemporaryFileUploadHandler):
    chunk_size = 1024 * 1024

    def new_file(self, *args, **kwargs):
        if not is_upload_route(self.request):
            # Only the upload routes take files, and only after UploadGateMiddleware (or the API view) authorized the
            # caller. Anywhere else (CSRF parsing a stranger's POST, say) stop parsing instead of spooling to disk.
            raise StopUpload(connection_reset=True)
        super().new_file(*args, **kwargs)
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
        return super().receive_data_chunk(raw_data, start)

    def file_complete(self, file_size):
        uploaded = super().file_complete(file_size)
        uploaded.sha256 = self._hasher.hexdigest()
        uploaded.oversized = self._oversized
        uploaded.received_bytes = self._received
        return uploaded
