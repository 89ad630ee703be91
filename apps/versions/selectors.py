from datetime import datetime

from django.core.exceptions import ValidationError
from django.db.models import F, OuterRef, QuerySet, Subquery
from django.http import Http404
from django.utils import timezone

from apps.models.models import RegisteredModel

from .models import Artifact, Deployment, ModelVersion, ProductionPointerChange
from .paths import canonical_artifact_path


def version_or_404(model: RegisteredModel, number: int, *, queryset: QuerySet[ModelVersion] | None = None) -> ModelVersion:
    """A version of a model the caller has already loaded through the permission helper, or 404."""
    queryset = queryset if queryset is not None else ModelVersion.objects.select_related("model")
    version = queryset.filter(model=model, number=number).first()
    if version is None:
        raise Http404(f"Model '{model.name}' has no version {number}.")
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


def deployments_with_drift(model: RegisteredModel, production: ModelVersion | None, last_change: ProductionPointerChange | None) -> list[dict]:
    """Each environment's reported version, and how long it has lagged behind the production pointer."""
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
