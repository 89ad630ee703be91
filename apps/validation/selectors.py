"""Reads of the validation app: a model's policy, the quality gate evaluated now, what blocks a version."""

from apps.models.models import RegisteredModel
from apps.versions.models import ModelVersion
from apps.versions.selectors import production_version

from . import quality
from .models import ValidationJob, ValidationPolicy


def validation_policy(model: RegisteredModel) -> ValidationPolicy | None:
    """A model's validation policy with its rules and pinned baseline, or None (no required files, no rules)."""
    return ValidationPolicy.objects.filter(model=model).prefetch_related("rules").select_related("pinned_baseline").first()


def quality_gate(version: ModelVersion, policy: ValidationPolicy | None) -> tuple[str, ModelVersion | None, list[dict]]:
    """(QualityStatus, baseline, one result per rule): the rules evaluated now against the pinned baseline, or else the
    version in production now (none when that is the version itself)."""
    baseline = (policy.pinned_baseline if policy and policy.pinned_baseline_id else None) or production_version(version.model)
    if baseline is not None and baseline.pk == version.pk:
        baseline = None
    rules = [
        quality.Rule(r.metric, r.direction, r.allowed_regression, r.regression_kind, r.min_value, r.max_value)
        for r in (policy.rules.all() if policy else [])
    ]
    candidate = dict(version.metrics.values_list("name", "value"))
    baseline_metrics = dict(baseline.metrics.values_list("name", "value")) if baseline else None
    status, results = quality.evaluate(rules, candidate, baseline_metrics)
    return status, baseline, results


def latest_job(version: ModelVersion) -> ValidationJob | None:
    """The version's newest validation job with its checks and quality baseline, for the job panel."""
    return ValidationJob.objects.filter(version=version).select_related("quality_baseline").prefetch_related("checks").first()


def unsafe_finding_blocks(version: ModelVersion) -> bool:
    """A version whose latest finished validation found unsafe serialization may never leave draft."""
    return ValidationJob.objects.filter(version=version, unsafe_finding=True).exists()
