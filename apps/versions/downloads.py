"""Answers that carry a version's bytes: one artifact (with HEAD, ETag, If-None-Match and Range) or a whole archive."""

import base64
import posixpath
import re

from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseNotModified,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.utils.http import content_disposition_header

from apps.web.errors import error_body

from .archive import ArchiveFormat, archive_stream
from .blobs import artifact_storage, blob_chunks, blob_is_local, blob_key, blob_storage_key
from .models import Artifact

RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(Exception):
    pass


def _etag(sha256: str) -> str:
    return f'"{sha256}"'


def etag_matches(header: str, etag: str) -> bool:
    """If-None-Match's weak comparison (RFC 9110): W/ prefixes do not count."""
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or etag.removeprefix("W/") in tags


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The single byte range asked for, as (first, last) inclusive; None to send the whole file (no header, several
    ranges, or a malformed one, which RFC 9110 says to ignore). Raises RangeNotSatisfiable past the end."""
    match = RANGE.match(header.replace(" ", ""))
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # the last N bytes
        if int(last) == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - int(last)), size - 1
    if int(first) >= size:
        raise RangeNotSatisfiable
    if last != "" and int(last) < int(first):
        return None
    return int(first), min(size - 1, int(last)) if last else size - 1


def _checksum_headers(artifact: Artifact) -> dict:
    return {
        "ETag": _etag(artifact.sha256),
        "X-Checksum-SHA256": artifact.sha256,
        "Repr-Digest": f"sha-256=:{base64.b64encode(bytes.fromhex(artifact.sha256)).decode()}:",  # RFC 9530
        "Cache-Control": "private, no-cache",  # a revalidation is cheap (304) and checks the permission again
        "X-Content-Type-Options": "nosniff",
    }


def artifact_response(request: HttpRequest, artifact: Artifact) -> HttpResponse:
    """Answer GET or HEAD for one artifact, its SHA-256 as the ETag.

    Local disk: streamed from the file, a single Range answered with 206. S3: a redirect to a short-lived presigned
    URL (which asks S3 for its own checksum too); the SHA-256 travels in the redirect's headers for the client to check.
    Never reads the file into memory.
    """
    filename = posixpath.basename(artifact.path)
    headers = _checksum_headers(artifact)
    local = blob_is_local()
    if local:
        headers["Accept-Ranges"] = "bytes"
    if etag_matches(request.headers.get("If-None-Match", ""), headers["ETag"]):
        return HttpResponseNotModified(headers=headers)
    headers["Content-Disposition"] = content_disposition_header(True, filename)
    if request.method == "HEAD":
        return HttpResponse(content_type=artifact.content_type, headers={**headers, "Content-Length": str(artifact.size)})
    if not local:
        url = artifact_storage().url(
            blob_storage_key(artifact.sha256),
            parameters={
                "ResponseContentDisposition": headers["Content-Disposition"],
                "ResponseContentType": artifact.content_type,
                "ChecksumMode": "ENABLED",
            },
        )
        return HttpResponseRedirect(url, headers=headers)
    wanted = request.headers.get("Range", "")
    if_range = request.headers.get("If-Range")
    try:
        byte_range = _byte_range(wanted, artifact.size) if wanted and (if_range is None or if_range == headers["ETag"]) else None
    except RangeNotSatisfiable:
        message = f"The file has {artifact.size} bytes; ask for a range inside it, or for the whole file without Range."
        return JsonResponse(error_body("range_not_satisfiable", message), status=416, headers={**headers, "Content-Range": f"bytes */{artifact.size}"})
    if byte_range is None:
        stored = artifact_storage().open(blob_key(artifact.sha256), "rb")
        return FileResponse(stored, as_attachment=True, filename=filename, content_type=artifact.content_type, headers=headers)
    first, last = byte_range
    return StreamingHttpResponse(
        blob_chunks(artifact.sha256, start=first, length=last - first + 1),
        status=206,
        content_type=artifact.content_type,
        headers={**headers, "Content-Range": f"bytes {first}-{last}/{artifact.size}", "Content-Length": str(last - first + 1)},
    )


def archive_response(manifest: dict, archive_format: ArchiveFormat) -> StreamingHttpResponse:
    """The whole version as a streamed zip or tar (see apps.versions.archive), with its exact Content-Length."""
    chunks, length = archive_stream(manifest, archive_format)
    filename = f"{manifest['model']}-{manifest['version']}.{archive_format}"
    return StreamingHttpResponse(
        chunks,
        content_type="application/zip" if archive_format == ArchiveFormat.ZIP else "application/x-tar",
        headers={
            "Content-Length": str(length),
            "Content-Disposition": content_disposition_header(True, filename),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-cache",
        },
    )
