"""What a reviewer needs beside a request: the candidate against the version now in production."""

from apps.approvals.lifecycle import Stage
from apps.versions.models import ModelVersion
from apps.versions.selectors import versions_with_details

MISSING = object()


def compare_with_production(version: ModelVersion) -> dict:
    production = versions_with_details(ModelVersion.objects.filter(model_id=version.model_id, stage=Stage.PRODUCTION)).first()
    if production is not None and production.pk == version.pk:
        production = None
    candidate_metrics = {m.name: m.value for m in version.metrics.all()}
    production_metrics = {m.name: m.value for m in production.metrics.all()} if production else {}
    metrics = []
    for name in sorted(set(candidate_metrics) | set(production_metrics)):
        new, old = candidate_metrics.get(name), production_metrics.get(name)
        metrics.append({"name": name, "candidate": new, "production": old, "delta": (new - old) if new is not None and old is not None else None})
    candidate_params, production_params = version.hyperparameters, (production.hyperparameters if production else {})
    parameters = []
    for name in sorted(set(candidate_params) | set(production_params)):
        new, old = candidate_params.get(name, MISSING), production_params.get(name, MISSING)
        parameters.append({
            "name": name,
            "candidate": None if new is MISSING else new,
            "production": None if old is MISSING else old,
            "changed": production is not None and new != old,
        })
    return {"production": production, "metrics": metrics, "parameters": parameters}
