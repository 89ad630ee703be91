from datetime import datetime

from django.core.exceptions import ValidationError
from django.db.models import F, Max, OuterRef, QuerySet, Subquery
from django.http import Http404
from django.utils import timezone

from apps.models.models import RegisteredModel

from .aliases import PRODUCTION_ALIAS
from .lifecycle import Stage
from .models import AliasChange, Artifact, Deployment, ModelAlias, ModelVersion, ProductionPointerChange
from .paths import canonical_artifact_path


def version_or_404(model: RegisteredModel, number: int, *, queryset: QuerySet[ModelVersion] | None = None) -> ModelVersion:
    """A version of a model the caller has already loaded through the permission helper, or 404."""
    queryset = queryset if queryset is not None else ModelVersion.objects.select_related("model")
    version = queryset.filter(model=model, number=number).first()
    if version is None:
        raise Http404(f"Model '{model.name}' has no version {number}.")
    return version


def version_in_stage_or_404(model: RegisteredModel, stage: str) -> ModelVersion:
    """The newest version of a loaded model in `stage` (production holds at most one), or 404, as the stage endpoint picks it."""
    if stage not in Stage.values:
        raise Http404(f"Unknown stage '{stage}'; use one of {', '.join(Stage.values)}.")
    version = ModelVersion.objects.select_related("model").filter(model=model, stage=stage).order_by("-number").first()
    if version is None:
        raise Http404(f"Model '{model.name}' has no version in {stage}.")
    return version


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
    """The version serving production now, or None."""
    return ModelVersion.objects.production().filter(model=model).first()


def models_with_pointers(queryset: QuerySet[RegisteredModel]) -> QuerySet[RegisteredModel]:
    """Annotate each model with its production and latest version numbers (one subquery, no N+1)."""
    production = ModelVersion.objects.production().filter(model=OuterRef("pk"))
    return queryset.annotate(production_number=Subquery(production.values("number")[:1]), version_count=F("last_version_number"))


def deployments_with_drift(
    model: RegisteredModel, production: ModelVersion | None, last_change: ProductionPointerChange | None, aliases: list[ModelAlias] | None = None
) -> list[dict]:
    """Each environment's reported version, and how long it has lagged behind the alias it follows (production by default).

    `aliases` are the model's free aliases with their versions, read once for the page (`approvals.selectors.aliases_with_policies`); the
    moments the followed free aliases last moved are read in one query, only when some environment lags behind one.
    """
    pointing = {alias.name: alias.version for alias in aliases or []}
    pointing[PRODUCTION_ALIAS] = production
    rows = []
    for deployment in Deployment.objects.filter(model=model).select_related("version", "reported_by"):
        target = pointing.get(deployment.follows)
        rows.append({"deployment": deployment, "target": target, "drifting": target is not None and deployment.version_id != target.pk})
    lagging = {row["deployment"].follows for row in rows if row["drifting"]} - {PRODUCTION_ALIAS}
    moved = dict(
        AliasChange.objects.filter(model=model, alias__in=lagging).values("alias").annotate(last=Max("changed_at")).values_list("alias", "last")
    ) if lagging else {}
    if last_change is not None:
        moved[PRODUCTION_ALIAS] = last_change.changed_at
    for row in rows:
        since = moved.get(row["deployment"].follows) if row["drifting"] else None
        row["behind_for"] = (timezone.now() - since) if since else None
    return rows


# -- aliases -----------------------------------------------------------------------------------------------------------


def aliases_by_version(aliases: list[ModelAlias]) -> dict:
    """Version pk -> the names of the free aliases pointing at it, for badges."""
    names: dict = {}
    for alias in aliases:
        names.setdefault(alias.version_id, []).append(alias.name)
    return names


def version_at_alias(model: RegisteredModel, alias: str) -> ModelVersion | None:
    """The version an alias points at now (`production`: the production version), or None if it points nowhere."""
    return alias_pointer(model, alias)[0]


def alias_pointer(model: RegisteredModel, alias: str) -> tuple[ModelVersion | None, datetime | None]:
    """The version an alias points at and when it last moved (`production`: when that version entered production)."""
    if alias == PRODUCTION_ALIAS:
        version = production_version(model)
        return version, version.stage_changed_at if version else None
    row = ModelAlias.objects.filter(model=model, name=alias).select_related("version__model").first()
    return (row.version, row.updated_at) if row else (None, None)


def alias_history(model: RegisteredModel, alias: str) -> QuerySet:
    """An alias's moves, newest first: ProductionPointerChange rows for `production`, AliasChange rows for a free alias.

    Both have changed_at, kind, version, previous_version, actor and reason."""
    if alias == PRODUCTION_ALIAS:
        return production_history(model)
    return AliasChange.objects.filter(model=model, alias=alias).select_related("version", "previous_version", "actor")


def alias_at(model: RegisteredModel, alias: str, when: datetime) -> ModelVersion | None:
    """The version an alias pointed at, at instant `when` (None if it pointed nowhere)."""
    if alias == PRODUCTION_ALIAS:
        return production_at(model, when)
    change = AliasChange.objects.filter(model=model, alias=alias, changed_at__lte=when).select_related("version").order_by("-changed_at", "-id").first()
    return change.version if change else None


def alias_rollback_candidates(model: RegisteredModel, alias: str, current: ModelVersion | None = None) -> list[int]:
    """Numbers of the versions an alias (`production` included) pointed at before, those it may be rolled back to,
    newest first, without `current`."""
    changes = alias_history(model, alias).filter(version__isnull=False).order_by("-changed_at", "-id")
    if current is not None:
        changes = changes.exclude(version=current)
    return list(dict.fromkeys(changes.values_list("version__number", flat=True)))


MAX_PICKED = 100


def picked_versions(model: RegisteredModel, values: list[str]) -> tuple[list[ModelVersion], list[str]]:
    """The versions of `model` named by ticked boxes (`<model>:<number>` or `<number>`), by number, and what was wrong."""
    numbers, errors = set(), []
    for value in values[:MAX_PICKED]:
        name, _, number = value.rpartition(":")
        if name and name != model.name:
            errors.append(f"{value!r} is a version of another model; archive it from that model's page.")
        elif not number.isdigit():
            errors.append(f"{value!r} is not a version number.")
        else:
            numbers.add(int(number))
    if len(values) > MAX_PICKED:
        errors.append(f"Pick at most {MAX_PICKED} versions at once.")
    versions = list(ModelVersion.objects.filter(model=model, number__in=numbers).order_by("-number"))
    missing = sorted(numbers - {version.number for version in versions})
    if missing:
        errors.append(f"'{model.name}' has no version {', '.join(map(str, missing))}.")
    return versions, errors
