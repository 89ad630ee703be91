"""Registry objects in MLflow's JSON shapes (`mlflow.protos.model_registry_pb2`): version numbers as strings,
timestamps in milliseconds, stages with MLflow's names, `status: READY` (a registration is complete when it commits)."""

from django.core.exceptions import ObjectDoesNotExist

from apps.versions.lifecycle import Stage

MLFLOW_STAGE = {Stage.DRAFT: "None", Stage.STAGING: "Staging", Stage.PRODUCTION: "Production", Stage.ARCHIVED: "Archived"}
STAGE_FROM_MLFLOW = {label.lower(): stage for stage, label in MLFLOW_STAGE.items()}
ARTIFACTS_ROOT = "mlflow-artifacts:/"
VERSIONS_PREFIX = "models"  # mlflow-artifacts:/models/<name>/versions/<number>/<path>: a registered version's files


def ms(instant) -> int | None:
    return int(instant.timestamp() * 1000) if instant is not None else None


def version_download_uri(model_name: str, number: int) -> str:
    return f"{ARTIFACTS_ROOT}{VERSIONS_PREFIX}/{model_name}/versions/{number}"


def _source(version) -> str:
    try:
        return version.mlflow_source.source
    except ObjectDoesNotExist:
        return version_download_uri(version.model.name, version.number)


def _run(version) -> tuple[str, str]:
    try:
        run = version.training_run
    except ObjectDoesNotExist:
        return "", ""
    return run.run_id, run.url


def version_to_dict(version, aliases: list[str]) -> dict:
    """A ModelVersion message. Expects `model`, `created_by`, `training_run`, `mlflow_source` selected and `key_tags` prefetched."""
    run_id, run_link = _run(version)
    return {
        "name": version.model.name,
        "version": str(version.number),
        "creation_timestamp": ms(version.created_at),
        "last_updated_timestamp": ms(version.updated_at),
        "user_id": version.created_by.get_username() if version.created_by else "",
        "current_stage": MLFLOW_STAGE[version.stage],
        "description": version.description,
        "source": _source(version),
        "run_id": run_id,
        "run_link": run_link,
        "status": "READY",
        "tags": [{"key": tag.key, "value": tag.value} for tag in version.key_tags.all()],
        "aliases": aliases,
    }


def model_to_dict(model, *, latest: list[dict], aliases: list[tuple[str, int]]) -> dict:
    """A RegisteredModel message. Expects `created_by` selected and `key_tags` prefetched."""
    return {
        "name": model.name,
        "creation_timestamp": ms(model.created_at),
        "last_updated_timestamp": ms(model.updated_at),
        "user_id": model.created_by.get_username() if model.created_by else "",
        "description": model.description,
        "latest_versions": latest,
        "tags": [{"key": tag.key, "value": tag.value} for tag in model.key_tags.all()],
        "aliases": [{"alias": alias, "version": str(number)} for alias, number in aliases],
    }
