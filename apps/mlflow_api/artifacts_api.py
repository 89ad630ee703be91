"""The MLflow artifact proxy (`/api/2.0/mlflow-artifacts/artifacts`), over the registry's blob store.

Two areas, both permission-checked before any body is read:
  models/<name>/versions/<n>/...   a registered version's files: read-only, for whoever may view the model
  anything else                    the caller's own uploads (`log_artifact(s)`), kept until a version is created
                                   from them or MLFLOW_UPLOAD_HOURS pass; nobody else sees them
"""

import hashlib
import mimetypes
import tempfile

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from rest_framework.response import Response

from apps.accounts.models import TokenScope
from apps.models.permissions import require_scope
from apps.versions.downloads import artifact_response
from apps.versions.models import Artifact
from apps.versions.paths import canonical_artifact_path
from apps.versions.selectors import artifact_or_404
from apps.versions.services import IncomingFile
from apps.versions.spool import spool_claim, spool_dir

from .api import endpoint
from .errors import not_found
from .models import StagedArtifact
from .rendering import VERSIONS_PREFIX
from .selectors import model_for, staged_under, version_artifacts_under, version_for
from .services import locate_version_path, staged_artifact_put, staged_path

CHUNK = 1024 * 1024


def _receive(request, path: str) -> IncomingFile:
    """The raw PUT body, streamed to a spool file (swept like the upload spool if the process dies) while hashed."""
    spool = tempfile.NamedTemporaryFile(dir=spool_dir(), prefix="tmp", suffix=".upload")
    spool_claim(spool)
    hasher, size, oversized = hashlib.sha256(), 0, False
    stream = request.stream
    while stream is not None and (chunk := stream.read(CHUNK)):
        size += len(chunk)
        if size > settings.ARTIFACT_MAX_FILE_BYTES:
            oversized = True  # read on, store nothing more: the answer says the file is too large
            continue
        hasher.update(chunk)
        spool.write(chunk)
    spool.flush()
    spool.seek(0)
    return IncomingFile(path=path, content=File(spool), sha256=hasher.hexdigest(), size=size, oversized=oversized)


def _checked(raw: str) -> str:
    try:
        return canonical_artifact_path(raw)
    except ValidationError as exc:
        raise not_found(exc.messages[0]) from exc


@endpoint("PUT", "GET")
def artifact_file(request, path: str):
    if request.method == "PUT":
        require_scope(request.user, TokenScope.REGISTER, "uploading artifacts")
        path = staged_path(path)  # before the body is read
        incoming = _receive(request, path)
        try:
            staged_artifact_put(owner=request.user, path=path, incoming=incoming)
        finally:
            incoming.content.close()
        return Response({})
    path = _checked(path)
    located = locate_version_path(path)
    if located is not None:
        name, number, inside = located
        return artifact_response(request, artifact_or_404(model_for(request.user, name), number, inside))
    staged = StagedArtifact.objects.filter(owner=request.user, path=path).first()
    if staged is None:
        raise not_found(f"You have uploaded no file at {path!r}.")
    content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return artifact_response(request, Artifact(path=staged.path, sha256=staged.sha256, size=staged.size, content_type=content_type))


def _children(rows: list[tuple[str, int]], root: str) -> list[dict]:
    """MLflow's listing of `root`: its direct entries by base name; a file asked for by its own path lists itself."""
    entries: dict[str, dict] = {}
    for path, size in rows:
        if path == root:
            name = path.rsplit("/", 1)[-1]
            entries[name] = {"path": name, "is_dir": False, "file_size": size}
            continue
        relative = path[len(root) + 1:] if root else path
        head, _, rest = relative.partition("/")
        entries[head] = {"path": head, "is_dir": True} if rest else {"path": head, "is_dir": False, "file_size": size}
    return [entries[name] for name in sorted(entries)]


@endpoint("GET")
def artifact_listing(request):
    raw = (request.query_params.get("path") or "").strip("/")
    root = _checked(raw) if raw else ""
    located = locate_version_path(root)
    if located is not None:
        name, number, inside = located
        version = version_for(request.user, name, number)
        rows = [(artifact.path, artifact.size) for artifact in version_artifacts_under(version, inside)]
        if inside and not rows:
            raise not_found(f"Version {number} of '{version.model.name}' has nothing at {inside!r}.")
        return Response({"files": _children(rows, inside)})
    if root == VERSIONS_PREFIX or root.startswith(VERSIONS_PREFIX + "/"):
        raise not_found(f"List a version's files at {VERSIONS_PREFIX}/<name>/versions/<number>.")
    rows = [(staged.path, staged.size) for staged in staged_under(request.user, root)]
    return Response({"files": _children(rows, root)})
