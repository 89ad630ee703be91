from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import OuterRef, Prefetch, QuerySet, Subquery
from django.http import Http404

from apps.approvals.lifecycle import Stage
from apps.lineage.models import VersionDataset
from apps.models.models import RegisteredModel
from apps.models.permissions import visible_model_sql
from apps.validation.models import ValidationJob

from .models import Artifact, Deployment, ModelVersion, ProductionPointerChange
from .paths import canonical_artifact_path


def versions_with_details(queryset: QuerySet[ModelVersion] | None = None) -> QuerySet[ModelVersion]:
    """Versions with everything their page or JSON shows, in a fixed number of queries."""
    queryset = queryset if queryset is not None else ModelVersion.objects.all()
    return queryset.select_related("model", "created_by", "training_run").prefetch_related(
        "artifacts",
        "metrics",
        "tags",
        Prefetch("dataset_links", queryset=VersionDataset.objects.select_related("dataset")),
        Prefetch(
            "validation_jobs",
            queryset=ValidationJob.objects.order_by("-created_at", "-id").select_related("quality_baseline").prefetch_related("checks"),
        ),
    )


def version_or_404(model: RegisteredModel, number: int, *, details: bool = False) -> ModelVersion:
    """A version of a model the caller has already loaded through the permission helper, or 404."""
    queryset = ModelVersion.objects.filter(model=model, number=number)
    version = (versions_with_details(queryset) if details else queryset.select_related("model")).first()
    if version is None:
        raise Http404(f"Model '{model.name}' has no version {number}.")
    return version


def stage_fingerprint(user, name: str, stage: str) -> dict | None:
    """One query: the version a stage points at (for a model the user may view), with what its JSON depends on.

    The version's JSON changes only when the version row or its latest validation job changes, so these
    values make an ETag and a cache key without loading anything else. The job's attempts are among them: a
    job taken over from a dead worker is `running` again with a new start, and every web process must then
    answer the new body under a new ETag. Hand-written SQL because this is what deployment pipelines poll:
    building the equivalent ORM query cost more than running it.
    """
    visible, params = visible_model_sql("m", user)
    versions, models_, jobs = ModelVersion._meta.db_table, RegisteredModel._meta.db_table, ValidationJob._meta.db_table
    sql = (
        f"SELECT v.id, v.model_id, v.number, v.updated_at,"
        f" (SELECT j.id FROM {jobs} j WHERE j.version_id = v.id ORDER BY j.created_at DESC, j.id DESC LIMIT 1),"
        f" (SELECT j.status FROM {jobs} j WHERE j.version_id = v.id ORDER BY j.created_at DESC, j.id DESC LIMIT 1),"
        f" (SELECT j.attempts FROM {jobs} j WHERE j.version_id = v.id ORDER BY j.created_at DESC, j.id DESC LIMIT 1)"
        f" FROM {versions} v JOIN {models_} m ON m.id = v.model_id"
        f" WHERE m.name = %s AND v.stage = %s AND {visible} ORDER BY v.number DESC LIMIT 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [name, stage, *params])
        row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip(("pk", "model_id", "number", "updated_at", "job_id", "job_status", "job_attempts"), (str(row[0]), *row[1:])))


def versions_for_model_table(model: RegisteredModel, *, stage: str = "") -> QuerySet[ModelVersion]:
    latest_job = ValidationJob.objects.filter(version=OuterRef("pk")).order_by("-created_at", "-id")
    queryset = (
        ModelVersion.objects.filter(model=model)
        .select_related("created_by")
        .prefetch_related("metrics")
        .annotate(validation_status=Subquery(latest_job.values("status")[:1]), quality_status=Subquery(latest_job.values("quality_status")[:1]))
        .order_by("-number")
    )
    if stage:
        queryset = queryset.filter(stage=stage)
    return queryset


def production_history(model: RegisteredModel) -> QuerySet[ProductionPointerChange]:
    return ProductionPointerChange.objects.filter(model=model).select_related("version", "previous_version", "actor")


def production_at(model: RegisteredModel, when: datetime) -> ModelVersion | None:
    """The version that served production at instant `when` (None if none did)."""
    change = ProductionPointerChange.objects.filter(model=model, changed_at__lte=when).order_by("-changed_at", "-id").first()
    return change.version if change else None


def artifact_or_404(model: RegisteredModel, number: int, raw_path: str) -> Artifact:
    """Look an artifact up by the canonical form of the requested path: the same string that was validated and stored."""
    try:
        path = canonical_artifact_path(raw_path)
    except ValidationError as exc:
        raise Http404(exc.messages[0]) from exc
    artifact = Artifact.objects.filter(version__model=model, version__number=number, path=path).first()
    if artifact is None:
        raise Http404(f"Version {number} of '{model.name}' has no artifact '{path}'.")
    return artifact


def production_version(model: RegisteredModel) -> ModelVersion | None:
    return ModelVersion.objects.filter(model=model, stage=Stage.PRODUCTION).first()


def deployments_with_drift(model: RegisteredModel, production: ModelVersion | None, last_change: ProductionPointerChange | None) -> list[dict]:
    """Each environment's reported version, and how long it has lagged behind the production pointer."""
    from django.utils import timezone

    rows = []
    for deployment in Deployment.objects.filter(model=model).select_related("version", "reported_by"):
        drifting = production is not None and deployment.version_id != production.pk
        since = last_change.changed_at if drifting and last_change else None
        rows.append({
            "deployment": deployment,
            "drifting": drifting,
            "behind_for": (timezone.now() - since) if since else None,
        })
    return rows
