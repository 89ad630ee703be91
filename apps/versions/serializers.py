"""The version JSON of the API, built from a version loaded by `selectors.versions_with_details`."""

from django.urls import reverse

from .models import ModelVersion


def artifact_download_path(version: ModelVersion, path: str) -> str:
    return reverse("api:artifact-download", kwargs={"name": version.model.name, "number": version.number, "path": path})


def version_to_dict(version: ModelVersion, request=None) -> dict:
    def absolute(url: str) -> str:
        return request.build_absolute_uri(url) if request is not None else url

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
            {"name": link.dataset.name, "uri": link.dataset.uri, "digest": link.dataset.digest, "role": link.role}
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
        "created_by": version.created_by.get_username() if version.created_by else None,
        "created_at": version.created_at.isoformat(),
        "stage_changed_at": version.stage_changed_at.isoformat(),
    }
