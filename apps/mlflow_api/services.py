"""Writes behind the MLflow endpoints. Each goes through the registry's own services and permission helper:
models through `model_create`/`model_update`, versions through `version_register` (catalog) and `version_update`,
stages through `transition_request_create` (approvals, which calls the one gated `version_transition`), and every
write here is audited with `apps.audit.services.record` in its transaction."""

import posixpath
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.parsers import text_problem
from apps.approvals.models import TransitionRequest
from apps.approvals.selectors import pending_pointer_requests
from apps.approvals.services import ApprovalRequired, alias_set, transition_request_create
from apps.audit import services as audit
from apps.catalog.services import version_register
from apps.models.models import RegisteredModel
from apps.models.names import canonical_model_name
from apps.models.services import model_create
from apps.models.permissions import Action, require, require_scope
from apps.accounts.models import TokenScope
from apps.versions.blobs import blob_open, blob_put, blob_reserve
from apps.versions.document import metadata_from_dict
from apps.versions.aliases import checked_alias_name
from apps.versions.lifecycle import Stage
from apps.versions.models import BlobReservation, ModelVersion
from apps.versions.paths import canonical_artifact_path
from apps.versions.services import IncomingFile

from .errors import ErrorCode, MlflowError, invalid, not_found
from .models import TAG_KEY_MAX, TAG_VALUE_MAX, RegisteredModelKeyTag, StagedArtifact, VersionKeyTag, VersionSource
from .rendering import ARTIFACTS_ROOT, STAGE_FROM_MLFLOW, VERSIONS_PREFIX
from .selectors import model_for, staged_under, version_artifacts_under, version_number

SOURCE_MAX = 1000  # VersionSource.source
MLFLOW_ALIAS_REASON = "Set with the MLflow client (set_registered_model_alias)."
MLFLOW_JUSTIFICATION = "Requested with the MLflow client (transition_model_version_stage to {stage})."


def checked_tag(key, value) -> tuple[str, str]:
    if not isinstance(key, str) or not key or len(key) > TAG_KEY_MAX or text_problem(key):
        raise invalid(f"A tag key must be a string of 1 to {TAG_KEY_MAX} characters without NUL characters.")
    value = "" if value is None else value
    if not isinstance(value, str) or len(value) > TAG_VALUE_MAX or text_problem(value):
        raise invalid(f"The value of tag {key!r} must be a string of at most {TAG_VALUE_MAX} characters without NUL characters.")
    return key, value


@transaction.atomic
def registered_model_create(*, name: str, description: str, tags: list[tuple[str, str]], actor) -> RegisteredModel:
    """`model_create` (the creator manages the model), with MLflow's key-value tags, in one transaction."""
    tags = [checked_tag(key, value) for key, value in tags]
    if RegisteredModel.objects.filter(name__iexact=canonical_model_name(name)).exists():
        raise MlflowError(ErrorCode.RESOURCE_ALREADY_EXISTS, f"Registered Model (name={canonical_model_name(name)}) already exists.")
    model = model_create(name=name, description=description, actor=actor)
    for key, value in tags:
        model_key_tag_set(model=model, key=key, value=value, actor=actor)
    return model


# -- tags -------------------------------------------------------------------------------------------------------------


def _tag_write(*, table, owner: dict, obj, key, value, actor, delete: bool = False) -> None:
    """Set (or delete) one key-value tag of a model or version, touch its owner's update time and audit the change."""
    existing = table.objects.filter(**owner, key=key).first()
    if delete:
        if existing is None:
            raise not_found(f"{obj} has no tag {key!r}.")
        existing.delete()
    else:
        key, value = checked_tag(key, value)
        table.objects.update_or_create(**owner, key=key, defaults={"value": value})
    type(obj).objects.filter(pk=obj.pk).update(updated_at=timezone.now())
    audit.record(
        actor=actor, obj=obj, action=f"{'version' if isinstance(obj, ModelVersion) else 'model'}.tag_{'deleted' if delete else 'set'}",
        registered_model_id=getattr(obj, "model_id", obj.pk),
        before={"key": key, "value": existing.value} if existing is not None else None, after=None if delete else {"key": key, "value": value},
    )


@transaction.atomic
def model_key_tag_set(*, model: RegisteredModel, key: str, value: str, actor) -> None:
    """Set an MLflow tag on a model; changing a model's tags needs its manage permission, as on the edit page."""
    require(actor, Action.MANAGE, model)
    _tag_write(table=RegisteredModelKeyTag, owner={"model": model}, obj=model, key=key, value=value, actor=actor)


@transaction.atomic
def model_key_tag_delete(*, model: RegisteredModel, key: str, actor) -> None:
    require(actor, Action.MANAGE, model)
    _tag_write(table=RegisteredModelKeyTag, owner={"model": model}, obj=model, key=key, value=None, actor=actor, delete=True)


@transaction.atomic
def version_key_tag_set(*, version: ModelVersion, key: str, value: str, actor) -> None:
    """Set an MLflow tag on a version; needs the register permission, like editing a version's tags."""
    require(actor, Action.REGISTER, version.model)
    _tag_write(table=VersionKeyTag, owner={"version": version}, obj=version, key=key, value=value, actor=actor)


@transaction.atomic
def version_key_tag_delete(*, version: ModelVersion, key: str, actor) -> None:
    require(actor, Action.REGISTER, version.model)
    _tag_write(table=VersionKeyTag, owner={"version": version}, obj=version, key=key, value=None, actor=actor, delete=True)


# -- uploads ----------------------------------------------------------------------------------------------------------


def staged_path(raw: str) -> str:
    """A path in the caller's upload area: canonical like any artifact path, and not under the registered versions."""
    path = canonical_artifact_path(raw)
    if path == VERSIONS_PREFIX or path.startswith(VERSIONS_PREFIX + "/"):
        raise invalid(f"'{VERSIONS_PREFIX}/' holds registered versions, which never change; upload under another path, e.g. 'uploads/<run>/model'.")
    return path


def staged_artifact_put(*, owner, path: str, incoming: IncomingFile) -> StagedArtifact:
    """Keep an uploaded file for `owner` until a version is created from it or MLFLOW_UPLOAD_HOURS pass.

    The blob is reserved (committed) before it is stored, exactly as a registration does, and the reservation is
    what keeps it: `gc_artifact_blobs` removes it, and with it this row, once it expires unused.
    """
    require_scope(owner, TokenScope.REGISTER, "uploading artifacts")
    path = staged_path(path)
    if incoming.oversized:
        raise invalid(f"{path} is larger than the limit of {settings.ARTIFACT_MAX_FILE_BYTES} bytes.")
    [reservation_id] = blob_reserve(digests=[incoming.sha256])
    incoming.content.seek(0)
    blob_put(sha256=incoming.sha256, content=incoming.content)
    with transaction.atomic():
        BlobReservation.objects.filter(pk=reservation_id).update(expires_at=timezone.now() + timedelta(hours=settings.MLFLOW_UPLOAD_HOURS))
        previous = StagedArtifact.objects.select_for_update().filter(owner=owner, path=path).first()
        if previous is not None:
            BlobReservation.objects.filter(pk=previous.reservation_id).delete()  # and the row, by cascade
        return StagedArtifact.objects.create(owner=owner, path=path, sha256=incoming.sha256, size=incoming.size, reservation_id=reservation_id)


# -- versions ---------------------------------------------------------------------------------------------------------


def locate_version_path(path: str) -> tuple[str, int, str] | None:
    """(model name, number, path inside the version) for 'models/<name>/versions/<n>[/<path>]', else None."""
    parts = path.split("/", 4)
    if len(parts) < 4 or parts[0] != VERSIONS_PREFIX or parts[2] != "versions":
        return None
    return parts[1], version_number(parts[3]), parts[4] if len(parts) > 4 else ""


def registry_path(source: str) -> str | None:
    """The path inside the registry's artifact store that `source` names, or None when it points anywhere else."""
    if source.startswith("models:/") and "@" not in source:
        parts = source[len("models:/"):].strip("/").split("/")
        if len(parts) == 2 and parts[1].isdigit():
            return f"{VERSIONS_PREFIX}/{parts[0]}/versions/{parts[1]}"
        return None
    split = urlsplit(source)
    if split.scheme != ARTIFACTS_ROOT.rstrip(":/") or split.netloc or split.query or split.fragment:
        return None
    return split.path.strip("/")


class StoredBlob:
    """A blob already in the store, as a registration's file content. Registration reads a file only to store it,
    and these are stored (and reserved), so the blob is opened only if something does read it: a version of a
    thousand files does not hold a thousand open files."""

    def __init__(self, sha256: str, size: int):
        self.sha256, self.size, self._file = sha256, size, None

    def _opened(self):
        if self._file is None:
            self._file = blob_open(self.sha256)
        return self._file

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._opened().seek(offset, whence) if self._file is not None or offset or whence else 0

    def read(self, size: int = -1) -> bytes:
        return self._opened().read(size)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _relative(path: str, root: str) -> str:
    return posixpath.basename(path) if path == root else path[len(root) + 1:] if root else path


def source_files(*, actor, source: str) -> tuple[list[IncomingFile], list[StagedArtifact]]:
    """The files a `source` the registry stores names: another version's (the caller must view it) or the caller's
    own uploads. Their blobs are already stored; registration re-hashes nothing and stores nothing new."""
    if len(source) > SOURCE_MAX:
        raise invalid(f"source is longer than {SOURCE_MAX} characters.")
    path = registry_path(source)
    if path is None:
        raise invalid(
            f"source {source!r} is outside the registry, and the registry never fetches URIs. Upload the model's files with "
            "log_artifacts to an mlflow-artifacts:/ URI of this server (e.g. mlflow-artifacts:/uploads/<run>/model) and "
            "create the version from that URI, or name a registered version (models:/<name>/<version>)."
        )
    located = locate_version_path(path)
    if located is not None:
        name, number, inside = located
        model = model_for(actor, name)
        version = ModelVersion.objects.filter(model=model, number=number).first()
        if version is None:
            raise not_found(f"Model '{model.name}' has no version {number}.")
        rows = [(a.path, a.sha256, a.size) for a in version_artifacts_under(version, inside)]
        staged, root = [], inside
        if not rows:
            raise not_found(f"Version {number} of '{model.name}' has nothing at {inside!r}.")
    else:
        root = staged_path(path) if path else ""
        staged = staged_under(actor, root)
        rows = [(s.path, s.sha256, s.size) for s in staged]
    if not rows:
        raise not_found(f"Nothing was uploaded by you under {source!r}; upload the files first (log_artifacts), then create the version.")
    files = [IncomingFile(path=_relative(p, root), content=StoredBlob(sha256, size), sha256=sha256, size=size) for p, sha256, size in rows]
    return files, staged


def version_create_from_source(
    *, model: RegisteredModel, source: str, actor, description: str = "", run_id: str = "", run_link: str = "", tags: list[tuple[str, str]] = ()
) -> ModelVersion:
    """Register a version from files the registry already holds, like any registration: hashed, deduplicated (the
    blobs are shared), checked and validated. The uploads it consumed are no longer kept as uploads."""
    require(actor, Action.REGISTER, model)
    tags = [checked_tag(key, value) for key, value in tags]
    run = {key: value for key, value in (("id", run_id), ("url", run_link)) if value}
    metadata = metadata_from_dict({"description": description, **({"run": run} if run else {})})
    files, staged = source_files(actor=actor, source=source)

    def before_commit(version: ModelVersion) -> None:
        VersionSource.objects.create(version=version, source=source)
        VersionKeyTag.objects.bulk_create(VersionKeyTag(version=version, key=key, value=value) for key, value in dict(tags).items())
        BlobReservation.objects.filter(pk__in=[item.reservation_id for item in staged]).delete()  # the uploads, by cascade

    try:
        return version_register(model=model, files=files, metadata=metadata, actor=actor, before_commit=before_commit)
    finally:
        for item in files:
            item.content.close()


@transaction.atomic
def version_stage_request(*, version: ModelVersion, stage: str, actor, archive_existing: bool = False) -> TransitionRequest | None:
    """MLflow's transition-stage as a transition request: applied at once when the model's policy needs no approval,
    otherwise left pending for reviewers (the caller says so). None when the version is already in that stage."""
    to_stage = STAGE_FROM_MLFLOW.get(str(stage).lower())
    if to_stage is None:
        raise invalid(f"Unknown stage {stage!r}; use None, Staging, Production or Archived.")
    if archive_existing and to_stage == Stage.STAGING:
        raise invalid("archive_existing_versions is not supported for Staging (several versions may be in staging); promoting to Production always archives the previous production version.")
    if version.stage == to_stage:
        return None
    pending = TransitionRequest.objects.pending().filter(version=version, to_stage=to_stage).first()
    if pending is not None:
        return pending
    return transition_request_create(version=version, to_stage=to_stage, actor=actor, justification=MLFLOW_JUSTIFICATION.format(stage=stage))


def alias_point(*, model: RegisteredModel, alias: str, version: ModelVersion, actor) -> TransitionRequest | None:
    """MLflow's set-alias through `alias_set`: an ungoverned free alias moves at once (None). A governed one (and
    `production`) is never set directly: its transition request is opened, or the pending one found, and returned."""
    alias = checked_alias_name(alias)
    try:
        alias_set(model=model, alias=alias, version=version, actor=actor, reason=MLFLOW_ALIAS_REASON)
        return None
    except ApprovalRequired:
        pass
    pending = pending_pointer_requests(model, alias).filter(version=version).first()
    if pending is not None:
        return pending
    return transition_request_create(version=version, alias=alias, actor=actor, justification=MLFLOW_ALIAS_REASON)
