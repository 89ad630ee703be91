"""What a reviewer needs beside a request: the candidate against the version now in production."""

from apps.catalog.compare import MISSING, same_value
from apps.catalog.selectors import versions_with_details
from apps.lineage.models import DatasetRole, TrainingRun, VersionDataset, VersionParent
from apps.models.permissions import visible_models
from apps.versions.lifecycle import Stage
from apps.versions.models import ModelVersion, PointerChangeKind, ProductionPointerChange

from .models import RequestStatus, TransitionRequest


def comparison_for(transition_request: TransitionRequest) -> dict:
    """A request's candidate against production now; once a production request is applied, against the version it replaced."""
    if transition_request.status == RequestStatus.APPLIED and transition_request.to_stage == Stage.PRODUCTION:
        change = (
            ProductionPointerChange.objects.filter(
                version=transition_request.version, kind=PointerChangeKind.PROMOTION, changed_at__gte=transition_request.created_at
            )
            .order_by("changed_at", "id")
            .first()
        )
        replaced = change.previous_version_id if change is not None else None
        return compare_with_production(transition_request.version, against=replaced) | {"replaced": True}
    return compare_with_production(transition_request.version) | {"replaced": False}


def compare_with_production(version: ModelVersion, against: object = MISSING) -> dict:
    """`version` beside the production version (or, given `against`, the version with that id; None: nothing)."""
    if against is MISSING:
        production = versions_with_details(ModelVersion.objects.production().filter(model_id=version.model_id)).first()
    else:
        production = versions_with_details(ModelVersion.objects.filter(pk=against)).first() if against is not None else None
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
            "changed": production is not None and not same_value(new, old),
        })
    return {"production": production, "metrics": metrics, "parameters": parameters}


def provenance_for(user, version: ModelVersion, production: ModelVersion | None) -> dict:
    """Where the candidate came from, for the review page: its parents (those on models the user may not view only
    counted), its training run, and what changed in its training and evaluation data against `production`."""
    links = list(VersionParent.objects.filter(child=version).select_related("parent__model").order_by("id"))
    visible = set(visible_models(user).filter(pk__in={link.parent.model_id for link in links}).values_list("pk", flat=True)) if links else set()
    return {
        "parents": [link for link in links if link.parent.model_id in visible],
        "hidden_parents": sum(1 for link in links if link.parent.model_id not in visible),
        "run": TrainingRun.objects.filter(version=version).first(),
        "data_changes": dataset_changes(version, production),
    }


def _datasets(version: ModelVersion, role: str) -> dict[str, str]:
    links = VersionDataset.objects.filter(version=version, role=role).values_list("dataset__name", "dataset__digest")
    return dict(links)


def dataset_changes(version: ModelVersion, production: ModelVersion | None) -> list[dict]:
    """What differs in the data a candidate was evaluated and trained on against the production version, evaluation
    first (its metrics are only comparable on the same evaluation data): each {role, kind, message}."""
    if production is None:
        return []
    changes = []
    for role, verb in ((DatasetRole.EVALUATION, "evaluated"), (DatasetRole.TRAINING, "trained")):
        mine, theirs = _datasets(version, role), _datasets(production, role)
        if theirs and not mine:
            names = ", ".join(sorted(theirs))
            changes.append({"role": role, "kind": "missing", "message": f"v{version.number} records no {role} dataset; production (v{production.number}) was {verb} on {names}."})
            continue
        for name in sorted(set(theirs) - set(mine)):
            changes.append({"role": role, "kind": "removed", "message": f"Not {verb} on {name}, which production (v{production.number}) was."})
        for name in sorted(set(mine) - set(theirs)):
            changes.append({"role": role, "kind": "added", "message": f"{verb.capitalize()} on {name}, which production (v{production.number}) was not."})
        for name in sorted(set(mine) & set(theirs)):
            if mine[name] != theirs[name]:
                old, new = theirs[name] or "no digest", mine[name] or "no digest"
                changes.append({"role": role, "kind": "changed", "message": f"{role.capitalize()} dataset {name} changed: {old} in production, {new} here."})
    return changes
