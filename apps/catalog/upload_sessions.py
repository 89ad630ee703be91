"""Upload sessions, made and registered: the metadata is checked before any byte is sent, and the declared files are
committed as a version through the one registration service. Moving the bytes is `apps.versions.upload_sessions`."""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.lineage.services import parents_resolve
from apps.models.models import RegisteredModel
from apps.models.permissions import Action, require, visible_models
from apps.versions.document import SHA256_HEX, metadata_from_dict
from apps.versions.models import (
    Artifact,
    ModelVersion,
    UploadFileStatus,
    UploadSession,
    UploadSessionFile,
    UploadSessionStatus,
)
from apps.versions.paths import canonical_artifact_path
from apps.versions.services import IncomingFile
from apps.versions.upload_sessions import session_discard, session_files_prepare

from .services import version_register

MAX_FILES = 1000


def _declared_files(files) -> list[dict]:
    if not isinstance(files, list) or not files:
        raise ValidationError({"files": ["Declare at least one file: [{\"path\": ..., \"size\": ..., \"sha256\": ...}]."]})
    if len(files) > MAX_FILES:
        raise ValidationError({"files": [f"At most {MAX_FILES} files per version."]})
    errors, checked, seen = [], [], set()
    for number, item in enumerate(files, start=1):
        if not isinstance(item, dict) or set(item) - {"path", "size", "sha256"}:
            errors.append(f"File #{number}: give an object with 'path', 'size' and optionally 'sha256'.")
            continue
        try:
            path = canonical_artifact_path(item.get("path"))
        except ValidationError as exc:
            errors.extend(f"File #{number}: {message}" for message in exc.messages)
            continue
        size, digest = item.get("size"), item.get("sha256") or ""
        if path in seen:
            errors.append(f"Two files have the path {path!r}; each path may appear once per version.")
        seen.add(path)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            errors.append(f"{path}: 'size' must be the file's size in bytes (a whole number).")
        elif size > settings.ARTIFACT_MAX_FILE_BYTES:
            errors.append(f"{path} is larger than the limit of {settings.ARTIFACT_MAX_FILE_BYTES} bytes.")
        if not isinstance(digest, str) or (digest and not SHA256_HEX.match(digest)):
            errors.append(f"{path}: 'sha256' must be 64 lowercase hexadecimal characters.")
        checked.append({"path": path, "size": size, "sha256": digest})
    if errors:
        raise ValidationError({"files": errors})
    return checked


def _readable_blobs(actor, declared: list[dict]) -> set[tuple[str, int]]:
    """(digest, size) of declared files whose bytes the actor could already read: held by a version they may view.

    Only those are deduplicated. Anything else must be uploaded, even if the registry has the bytes, or declaring a
    digest would be enough to attach (and then download) another team's file.
    """
    digests = {item["sha256"] for item in declared if item["sha256"]}
    if not digests:
        return set()
    visible = ModelVersion.objects.filter(model__in=visible_models(actor))
    return set(Artifact.objects.filter(sha256__in=digests, version__in=visible).values_list("sha256", "size").distinct())


def upload_session_create(*, model: RegisteredModel, actor, document: dict, files) -> UploadSession:
    """Open an upload session for a version: check the metadata (parents included) and the declared files, answer per
    file whether the registry already has it (readable by the actor) or where its bytes go. Nothing is stored yet."""
    require(actor, Action.REGISTER, model)
    metadata = metadata_from_dict(document)
    declared = _declared_files(files)
    parents_resolve(actor=actor, model=model, declared=metadata.parents)
    readable = _readable_blobs(actor, declared)
    session = UploadSession(model=model, created_by=actor, metadata=document, expires_at=timezone.now() + timedelta(hours=settings.UPLOAD_SESSION_HOURS))
    rows = []
    for index, item in enumerate(declared):
        have = (item["sha256"], item["size"]) in readable
        rows.append(
            UploadSessionFile(
                session=session,
                index=index,
                path=item["path"],
                size=item["size"],
                declared_sha256=item["sha256"],
                sha256=item["sha256"] if have else "",
                status=UploadFileStatus.STORED if have else UploadFileStatus.PENDING,
                deduplicated=have,
            )
        )
    session_files_prepare(rows)  # S3 multipart uploads are opened before the rows that name them are written
    with transaction.atomic():
        session.save()
        UploadSessionFile.objects.bulk_create(rows)
    return session


def upload_session_register(*, session: UploadSession, actor, before_commit=None) -> ModelVersion:
    """Register the session's files and metadata as a new version, atomically, through `version_register`.

    Every file must be stored (deduplicated or uploaded and verified). The session is marked registered in the same
    transaction, under its row lock, so two registrations of one session make one version.
    """
    require(actor, Action.REGISTER, session.model)
    if session.status != UploadSessionStatus.OPEN:
        raise ValidationError({"session": ["This upload session is already registered; its version exists."]})
    files = list(session.files.all())
    waiting = [file.path for file in files if file.status != UploadFileStatus.STORED]
    if waiting:
        raise ValidationError({"files": [f"Not uploaded yet: {', '.join(waiting[:20])}. Send their bytes (or resume), then register."]})
    deduplicated = [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in files if f.deduplicated]
    if deduplicated and len(_readable_blobs(actor, deduplicated)) < len({(f["sha256"], f["size"]) for f in deduplicated}):
        raise ValidationError({"files": ["A file this session found already stored is no longer readable by you; start a new upload session."]})
    metadata = metadata_from_dict(session.metadata)

    def mark_registered(version: ModelVersion) -> None:
        locked = UploadSession.objects.select_for_update().get(pk=session.pk)
        if locked.status != UploadSessionStatus.OPEN:
            raise ValidationError({"session": ["This upload session is already registered; its version exists."]})
        UploadSession.objects.filter(pk=session.pk).update(status=UploadSessionStatus.REGISTERED, version=version)
        if before_commit is not None:
            before_commit(version)

    incoming = [IncomingFile(path=f.path, content=None, sha256=f.sha256, size=f.size) for f in files]
    version = version_register(model=session.model, files=incoming, metadata=metadata, actor=actor, before_commit=mark_registered)
    session.status, session.version = UploadSessionStatus.REGISTERED, version
    return version


def upload_session_abort(*, session: UploadSession, actor) -> None:
    """Give up a session: the row, and what it left in the spool or bucket, go now. Blobs it stored stay reserved until
    the session would have expired, then are collected like any unused blob."""
    require(actor, Action.REGISTER, session.model)
    session_discard(session)
    session.delete()
