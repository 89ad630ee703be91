"""The version JSON of the API, built from a version loaded by `selectors.versions_with_details`."""

from django.core.exceptions import ObjectDoesNotExist
from django.urls import reverse

from .models import ModelVersion


def artifact_download_path(version: ModelVersion, path: str) -> str:
    return reverse("api:artifact-download", kwargs={"name": version.model.name, "number": version.number, "path": path})


def latest_job(version: ModelVersion):
    """The newest validation job, from the prefetched list (see `selectors.versions_with_details`)."""
    jobs = list(version.validation_jobs.all())
    return jobs[0] if jobs else None


def training_run_to_dict(version: ModelVersion) -> dict | None:
    """The run that produced the version (one query unless `training_run` was select_related)."""
    try:
        run = version.training_run
    except ObjectDoesNotExist:
        return None
    return {"id": run.run_id, "url": run.url}


def validation_to_dict(job) -> tuple[dict, dict]:
    if job is None:
        return {"status": "none", "checks": []}, {"status": "none", "baseline_version": None, "rules": []}
    validation = {
        "status": job.status,
        "job_id": job.pk,
        "attempts": job.attempts,
        "error": job.error,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "unsafe_finding": job.unsafe_finding,
        "checks": [
            {"name": c.name, "verdict": c.verdict, "summary": c.summary, "details": c.details, "checker_version": c.checker_version}
            for c in job.checks.all()
        ],
    }
    quality = {
        "status": job.quality_status or ("pending" if not job.is_finished else "none"),
        "baseline_version": job.quality_baseline.number if job.quality_baseline else None,
        "rules": job.quality_rules,
    }
    return validation, quality


def version_to_dict(version: ModelVersion, request=None) -> dict:
    def absolute(url: str) -> str:
        return request.build_absolute_uri(url) if request is not None else url

    validation, quality = validation_to_dict(latest_job(version))
    return {
        "id": str(version.id),
        "model": version.model.name,
        "number": version.number,
        "stage": version.stage,
        "description": version.description,
        "tags": sorted(tag.name for tag in version.tags.all()),
        "flavor": version.flavor,
        "hyperparameters": version.hyperparameters,
        "metrics": {metric.name: metric.value for metric in version.metrics.all()},
        "datasets": [
            {
                "id": link.dataset_id, "name": link.dataset.name, "uri": link.dataset.uri, "digest": link.dataset.digest,
                "size_bytes": link.dataset.size_bytes, "role": link.role,
            }
            for link in version.dataset_links.all()
        ],
        "code": {
            "repository": version.code_repository,
            "commit": version.code_commit,
            "branch": version.code_branch,
            "dirty": version.code_dirty,
        },
        "dependencies": {
            "requirements": version.requirements,
            "python_version": version.python_version,
            "framework": version.framework,
            "framework_version": version.framework_version,
        },
        "environment": version.environment,
        # Parents are not in this body: it is cached for every viewer (the stage endpoint), and which parents a
        # caller may see depends on the caller. The lineage endpoint answers per caller.
        "run": training_run_to_dict(version),
        "lineage": {
            "graph_url": absolute(reverse("api:version-lineage", kwargs={"name": version.model.name, "number": version.number})),
            "impact_url": absolute(reverse("api:version-impact", kwargs={"name": version.model.name, "number": version.number})),
        },
        "artifacts": [
            {
                "path": artifact.path,
                "size": artifact.size,
                "sha256": artifact.sha256,
                "content_type": artifact.content_type,
                "download_url": absolute(artifact_download_path(version, artifact.path)),
            }
            for artifact in version.artifacts.all()
        ],
        "inspection": version.inspection,
        "validation": validation,
        "quality": quality,
        "created_by": version.created_by.get_username() if version.created_by else None,
        "created_at": version.created_at.isoformat(),
        "stage_changed_at": version.stage_changed_at.isoformat(),
    }
