import posixpath

from django.http import FileResponse, HttpResponseRedirect
from django.utils.http import content_disposition_header

from .blobs import artifact_storage, blob_is_local
from .models import Artifact


def artifact_response(artifact: Artifact):
    """Stream from local disk, or redirect to a short-lived presigned URL on S3. Never reads the file into memory."""
    filename = posixpath.basename(artifact.path)
    storage = artifact_storage()
    if blob_is_local():
        response = FileResponse(
            storage.open(artifact.blob_key, "rb"), as_attachment=True, filename=filename, content_type=artifact.content_type
        )
    else:
        url = storage.url(
            artifact.blob_key,
            parameters={
                "ResponseContentDisposition": content_disposition_header(True, filename),
                "ResponseContentType": artifact.content_type,
            },
        )
        response = HttpResponseRedirect(url)
    response["X-Content-Type-Options"] = "nosniff"
    response["X-Checksum-SHA256"] = artifact.sha256
    return response
