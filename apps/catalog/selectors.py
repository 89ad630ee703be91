"""Versions with what lineage and validation know about them, read in a fixed number of queries."""

from django.db import connection
from django.db.models import OuterRef, Prefetch, QuerySet, Subquery

from apps.lineage.models import VersionDataset
from apps.models.models import RegisteredModel
from apps.models.permissions import visible_model_sql
from apps.validation.models import ValidationJob
from apps.versions.models import ModelVersion
from apps.versions.selectors import version_or_404


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


def version_details_or_404(model: RegisteredModel, number: int) -> ModelVersion:
    """`version_or_404` with everything the version's page or JSON shows."""
    return version_or_404(model, number, queryset=versions_with_details())


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
