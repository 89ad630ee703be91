"""Registration: a version, its artifacts, metrics, lineage and validation job written in one transaction.

It lives here, above versions, lineage and validation, because it writes all three; versions never calls up into them.
"""

import mimetypes
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.audit import services as audit
from apps.lineage.services import datasets_attach, parents_attach, parents_resolve, training_run_attach
from apps.models.models import RegisteredModel
from apps.models.permissions import Action, require
from apps.validation.services import validation_job_create
from apps.versions.blobs import blob_exists, blob_put, blob_reservations_hold, blob_reservations_release, blob_reserve
from apps.versions.document import VersionMetadata
from apps.versions.models import Artifact, Metric, ModelVersion
from apps.versions.paths import canonical_artifact_path
from apps.versions.services import IncomingFile


def _checked_files(files: list[IncomingFile]) -> list[tuple[str, IncomingFile]]:
    if not files:
        raise ValidationError({"files": ["Upload at least one file (weights, config, ...)."]})
    errors: list[str] = []
    checked: list[tuple[str, IncomingFile]] = []
    seen: set[str] = set()
    for item in files:
        try:
            path = canonical_artifact_path(item.path)
        except ValidationError as exc:
            errors.extend(exc.messages)
            continue
        if path in seen:
            errors.append(f"Two files have the path {path!r}; each path may appear once per version.")
        seen.add(path)
        if item.oversized:
            errors.append(f"{path} is larger than the limit of {settings.ARTIFACT_MAX_FILE_BYTES} bytes.")
        elif item.declared_sha256 and item.declared_sha256 != item.sha256:
            errors.append(f"{path}: declared SHA-256 {item.declared_sha256} does not match the received bytes ({item.sha256}); upload it again.")
        checked.append((path, item))
    if errors:
        raise ValidationError({"files": errors})
    return checked


def version_register(
    *,
    model: RegisteredModel,
    files: list[IncomingFile],
    metadata: VersionMetadata,
    actor,
    before_commit: Callable[[ModelVersion], None] | None = None,
) -> ModelVersion:
    """Register a new version atomically: all artifacts stored and checksummed, or no version at all.

    `before_commit` is called with the new version inside the registration's transaction (the API renders and
    stores its answer there, apps.accounts.idempotency); if it raises, nothing is registered.

    Blobs are written first (storage is not transactional), then the version and its artifacts in one
    transaction. The digests are reserved before the store is looked at and the reservations locked right
    before the commit, so the garbage collector never deletes a blob this registration reuses or stored
    (apps.versions.blobs). Blobs of a registration that fails after storing stay unreferenced and are removed by
    `manage.py gc_artifact_blobs` after a grace period. They are not deleted on the spot: a concurrent
    registration of the same bytes may have found this blob already stored and be about to reference it.
    """
    require(actor, Action.REGISTER, model)
    checked = _checked_files(files)
    parents = parents_resolve(actor=actor, model=model, declared=metadata.parents)  # before storing: a bad parent stores nothing
    reservations = blob_reserve(digests=[item.sha256 for _, item in checked])  # committed before the reuse decisions below
    try:
        for path, item in checked:
            if item.content is None:  # an upload session's file, stored (and verified) before registration
                if not blob_exists(sha256=item.sha256):
                    raise ValidationError({"files": [f"{path}: its stored bytes are gone (the upload expired); upload it again."]})
                continue
            item.content.seek(0)
            blob_put(sha256=item.sha256, content=item.content)
        return _version_create(
            model=model, checked=checked, metadata=metadata, actor=actor, parents=parents, reservations=reservations, before_commit=before_commit
        )
    finally:
        blob_reservations_release(ids=reservations)


@transaction.atomic
def _version_create(*, model, checked, metadata: VersionMetadata, actor, parents: list, reservations: list[int], before_commit=None) -> ModelVersion:
    locked = RegisteredModel.objects.select_for_update().get(pk=model.pk)
    locked.last_version_number += 1
    locked.save(update_fields=["last_version_number"])
    code, deps = metadata.code, metadata.dependencies
    version = ModelVersion.objects.create(
        model=locked,
        number=locked.last_version_number,
        description=metadata.description,
        flavor=metadata.flavor,
        hyperparameters=metadata.hyperparameters,
        code_repository=code.get("repository", ""),
        code_commit=code.get("commit", ""),
        code_branch=code.get("branch", ""),
        code_dirty=code.get("dirty"),
        requirements=deps.get("requirements", ""),
        python_version=deps.get("python_version", ""),
        framework=deps.get("framework", ""),
        framework_version=deps.get("framework_version", ""),
        environment_image=str(metadata.environment.get("image", ""))[:300],
        environment=metadata.environment,
        created_by=actor,
    )
    if metadata.tags:
        version.tags.set(metadata.tags)
    Artifact.objects.bulk_create(
        Artifact(
            version=version,
            path=path,
            size=item.size,
            sha256=item.sha256,
            content_type=mimetypes.guess_type(path)[0] or "application/octet-stream",
        )
        for path, item in checked
    )
    Metric.objects.bulk_create(Metric(version=version, name=name, value=value) for name, value in metadata.metrics.items())
    datasets_attach(version=version, datasets=metadata.datasets, actor=actor)
    parents_attach(version=version, parents=parents)
    training_run_attach(version=version, run=metadata.run)
    validation_job_create(version=version)
    if before_commit is not None:
        before_commit(version)  # before the audit record, which serialises registrations until the commit
    audit.record(
        actor=actor,
        obj=version,
        action="version.registered",
        after={
            "number": version.number,
            "artifacts": {path: item.sha256 for path, item in checked},
            "metrics": metadata.metrics,
            # Ids, not names: this model's audit readers may not be allowed to know the parents' models.
            **({"parents": [{"version_id": str(p.pk), "relation": r} for p, r in parents]} if parents else {}),
            **({"run": metadata.run} if metadata.run else {}),
        },
        registered_model_id=locked.pk,
    )
    blob_reservations_hold(ids=reservations)  # last, so the collector waits for this commit instead of deciding during it
    return version
