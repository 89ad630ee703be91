"""Versions with what lineage and validation know about them, read in a fixed number of queries."""

from collections import defaultdict
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import F, OuterRef, Prefetch, QuerySet, Subquery, TextField, Value
from django.db.models.functions import Cast, Concat

from apps.lineage.models import VersionDataset
from apps.models.models import RegisteredModel
from apps.models.permissions import visible_model_sql
from apps.validation.models import FINISHED, CheckResult, ValidationJob
from apps.versions.models import Artifact, Metric, ModelAlias, ModelVersion, VersionTag
from apps.versions.rendering import raw_json
from apps.versions.selectors import version_or_404
from apps.web.rawsql import aware


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


# The version row's own columns the version JSON shows (apps.versions.rendering), read as values, not model instances.
VERSION_COLUMNS = (
    "id", "number", "stage", "description", "flavor", "code_repository", "code_commit", "code_branch", "code_dirty",
    "requirements", "python_version", "framework", "framework_version", "created_at", "stage_changed_at",
)
# Its JSON columns, read as their JSON text (`<column>_json`) and sent on as it is (`raw_json`), never parsed.
VERSION_JSON_COLUMNS = ("hyperparameters", "environment", "inspection")
JOB_COLUMNS = ("id", "status", "attempts", "error", "created_at", "started_at", "finished_at", "unsafe_finding", "quality_status", "quality_rules")


def version_rows(queryset: QuerySet[ModelVersion]) -> QuerySet:
    """`queryset` as rows (dicts) with what the version JSON shows from the version and its one-to-one neighbours.

    A values() queryset: it can still be filtered, ordered and sliced (the API list's filters and pages run on it),
    and it builds no model instances. JSON columns come as their text (`raw_json`). The newest validation job is
    picked here (its id, read by `version_page_details`; its status and attempts make the row's fingerprint).
    """
    newest_jobs = ValidationJob.objects.filter(version=OuterRef("pk")).order_by("-created_at", "-id")
    return queryset.values(
        *VERSION_COLUMNS,
        "model_id",
        "updated_at",
        **{f"{column}_json": Cast(column, TextField()) for column in VERSION_JSON_COLUMNS},
        model_name=F("model__name"),
        created_by_name=F(f"created_by__{get_user_model().USERNAME_FIELD}"),
        run_pk=F("training_run__id"),
        run_run_id=F("training_run__run_id"),
        run_url=F("training_run__url"),
        # One subquery for the three (id:attempts:status): a deep OFFSET page (`page=`) runs it for every row it skips.
        latest_job=Subquery(newest_jobs.annotate(state=Concat(Cast("pk", TextField()), Value(":"), Cast("attempts", TextField()), Value(":"), "status",
                                                            output_field=TextField())).values("state")[:1]),
    )


def latest_job(row: dict) -> tuple[int, int, str] | tuple[None, None, None]:
    """(id, attempts, status) of the newest validation job of a `version_rows` row, or Nones when it has none."""
    if row["latest_job"] is None:
        return None, None, None
    job_id, attempts, status = row["latest_job"].split(":", 2)
    return int(job_id), int(attempts), status


def row_fingerprint(row: dict) -> dict:
    """What `stage_fingerprint` and its kin say of a version, from its `version_rows` row (no query)."""
    job_id, attempts, status = latest_job(row)
    return {
        "pk": str(row["id"]), "model_id": row["model_id"], "number": row["number"], "updated_at": row["updated_at"],
        "job_id": job_id, "job_status": status, "job_attempts": attempts,
    }


@dataclass
class VersionPageDetails:
    """What a page of version rows shows from their one-to-many neighbours, grouped by version id (or job id)."""

    artifacts: dict = field(default_factory=lambda: defaultdict(list))  # version id -> [(path, size, sha256, content_type)]
    metrics: dict = field(default_factory=lambda: defaultdict(dict))  # version id -> {name: value}
    tags: dict = field(default_factory=lambda: defaultdict(list))  # version id -> [name]
    datasets: dict = field(default_factory=lambda: defaultdict(list))  # version id -> [(id, name, uri, digest, size_bytes, role)]
    latest_job_ids: dict = field(default_factory=dict)  # version id -> its newest validation job's id
    jobs: dict = field(default_factory=dict)  # job id -> {JOB_COLUMNS, baseline_number, is_finished}
    checks: dict = field(default_factory=lambda: defaultdict(list))  # job id -> [(name, verdict, summary, details, checker_version)]


def _in_ids(column: str, ids: list) -> tuple[str, list]:
    """`column` among `ids` as SQL: one array parameter on PostgreSQL (one short statement, prepared once and parsed
    once whatever the page size), a list of placeholders elsewhere."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [ids]
    return f"{column} IN ({', '.join(['%s'] * len(ids))})", ids


def _fetch(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def version_page_details(rows: list[dict]) -> VersionPageDetails:
    """One query per relation for the whole page (none for an empty page), in the orders the models declare.
    Only the newest validation job of each version and its checks are read.

    Hand-written SQL on the tables the models declare: for a page of 200 versions, building the equivalent ORM
    queries (each with 200 parameters to prepare) cost more than running them."""
    details = VersionPageDetails()
    if not rows:
        return details
    pk = ModelVersion._meta.pk
    by_key = {pk.get_db_prep_value(row["id"], connection): row["id"] for row in rows}  # as the database hands ids back
    ids = list(by_key)
    tables = {
        "artifact": Artifact._meta.db_table, "metric": Metric._meta.db_table, "tagged": VersionTag._meta.db_table,
        "tag": VersionTag.tag.field.related_model._meta.db_table, "link": VersionDataset._meta.db_table,
        "dataset": VersionDataset.dataset.field.related_model._meta.db_table, "check": CheckResult._meta.db_table,
    }
    where, params = _in_ids("a.version_id", ids)
    for version_id, *artifact in _fetch(f"SELECT a.version_id, a.path, a.size, a.sha256, a.content_type FROM {tables['artifact']} a"
                                        f" WHERE {where} ORDER BY a.path", params):
        details.artifacts[by_key[version_id]].append(tuple(artifact))
    where, params = _in_ids("m.version_id", ids)
    for version_id, name, value in _fetch(f"SELECT m.version_id, m.name, m.value FROM {tables['metric']} m WHERE {where} ORDER BY m.name", params):
        details.metrics[by_key[version_id]][name] = value
    where, params = _in_ids("t.content_object_id", ids)
    for version_id, name in _fetch(f"SELECT t.content_object_id, g.name FROM {tables['tagged']} t JOIN {tables['tag']} g ON g.id = t.tag_id"
                                   f" WHERE {where}", params):
        details.tags[by_key[version_id]].append(name)
    where, params = _in_ids("l.version_id", ids)
    links = _fetch(
        f"SELECT l.version_id, d.id, d.name, d.uri, d.digest, d.size_bytes, l.role FROM {tables['link']} l"
        f" JOIN {tables['dataset']} d ON d.id = l.dataset_id WHERE {where} ORDER BY l.role, d.name",
        params,
    )
    for version_id, *dataset in links:
        details.datasets[by_key[version_id]].append(tuple(dataset))
    details.latest_job_ids = {row["id"]: latest_job(row)[0] for row in rows}
    job_ids = [job_id for job_id in details.latest_job_ids.values() if job_id is not None]
    if job_ids:
        where, params = _in_ids("j.id", job_ids)
        columns = ", ".join(f"j.{column}" for column in JOB_COLUMNS)
        jobs = _fetch(f"SELECT {columns}, b.number FROM {ValidationJob._meta.db_table} j"
                      f" LEFT JOIN {ModelVersion._meta.db_table} b ON b.id = j.quality_baseline_id WHERE {where}", params)
        for values in jobs:
            job = dict(zip((*JOB_COLUMNS, "baseline_number"), values))
            job.update({column: aware(job[column]) for column in ("created_at", "started_at", "finished_at")})
            job.update(unsafe_finding=bool(job["unsafe_finding"]), quality_rules=raw_json(job["quality_rules"]), is_finished=job["status"] in FINISHED)
            details.jobs[job["id"]] = job
        where, params = _in_ids("c.job_id", job_ids)
        checks = _fetch(f"SELECT c.job_id, c.name, c.verdict, c.summary, c.details, c.checker_version FROM {tables['check']} c"
                        f" WHERE {where} ORDER BY c.position", params)
        for job_id, name, verdict, summary, check_details, checker_version in checks:
            details.checks[job_id].append((name, verdict, summary, raw_json(check_details), checker_version))
    return details


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
    versions, models_ = ModelVersion._meta.db_table, RegisteredModel._meta.db_table
    return _fingerprint(user, f"{versions} v JOIN {models_} m ON m.id = v.model_id WHERE m.name = %s AND v.stage = %s", [name, stage])


def number_fingerprint(user, name: str, number: int) -> dict | None:
    """`stage_fingerprint` for the version by its number: one query, the version and what its JSON depends on."""
    versions, models_ = ModelVersion._meta.db_table, RegisteredModel._meta.db_table
    return _fingerprint(user, f"{versions} v JOIN {models_} m ON m.id = v.model_id WHERE m.name = %s AND v.number = %s", [name, number])


def alias_fingerprint(user, name: str, alias: str) -> dict | None:
    """`stage_fingerprint` for a free alias: one query, the version the alias points at and what its JSON depends on."""
    versions, models_, aliases = ModelVersion._meta.db_table, RegisteredModel._meta.db_table, ModelAlias._meta.db_table
    joined = f"{aliases} a JOIN {versions} v ON v.id = a.version_id JOIN {models_} m ON m.id = a.model_id WHERE m.name = %s AND a.name = %s"
    return _fingerprint(user, joined, [name, alias])


def _fingerprint(user, joined: str, params: list) -> dict | None:
    visible, visible_params = visible_model_sql("m", user)
    jobs = ValidationJob._meta.db_table
    sql = (
        f"SELECT v.id, v.model_id, v.number, v.updated_at,"
        f" (SELECT j.id FROM {jobs} j WHERE j.version_id = v.id ORDER BY j.created_at DESC, j.id DESC LIMIT 1),"
        f" (SELECT j.status FROM {jobs} j WHERE j.version_id = v.id ORDER BY j.created_at DESC, j.id DESC LIMIT 1),"
        f" (SELECT j.attempts FROM {jobs} j WHERE j.version_id = v.id ORDER BY j.created_at DESC, j.id DESC LIMIT 1)"
        f" FROM {joined} AND {visible} ORDER BY v.number DESC LIMIT 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *visible_params])
        row = cursor.fetchone()
    if row is None:
        return None
    pk = str(ModelVersion._meta.pk.to_python(row[0]))  # SQLite hands the UUID back as bare hex: the same text as a row's id
    return dict(zip(("pk", "model_id", "number", "updated_at", "job_id", "job_status", "job_attempts"), (pk, *row[1:])))
