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
    pinned = policy.pinned_baseline if policy and policy.pinned_baseline_id else None
    baseline = _baseline(version.pk, pinned, production=None if pinned else production_version(version.model))
    rules = _rules(policy)
    candidate = dict(version.metrics.values_list("name", "value"))
    baseline_metrics = dict(baseline.metrics.values_list("name", "value")) if baseline else None
    status, results = quality.evaluate(rules, candidate, baseline_metrics)
    return status, baseline, results


def _baseline(candidate_id: int, pinned, *, production):
    """The one rule for what a gate compares with: the policy's pinned baseline, else the version in production now;
    never the candidate itself. Versions or their ids alike (`quality_gates` reads ids for a whole page)."""
    baseline = pinned or production
    return None if baseline is None or getattr(baseline, "pk", baseline) == candidate_id else baseline


def _rules(policy: ValidationPolicy | None) -> list[quality.Rule]:
    return [
        quality.Rule(r.metric, r.direction, r.allowed_regression, r.regression_kind, r.min_value, r.max_value)
        for r in (policy.rules.all() if policy else [])
    ]


def quality_gates(versions: list[ModelVersion]) -> dict:
    """`quality_gate` for a page of versions at once: {version id: (QualityStatus, baseline number or None)}, judged
    now against each model's pinned baseline or else its production version, in four queries whatever the page's size."""
    if not versions:
        return {}
    model_ids = {version.model_id for version in versions}
    policies = {policy.model_id: policy for policy in ValidationPolicy.objects.filter(model_id__in=model_ids).prefetch_related("rules")}
    production = dict(ModelVersion.objects.production().filter(model_id__in=model_ids).values_list("model_id", "pk"))
    baselines = {}
    for version in versions:
        policy = policies.get(version.model_id)
        baselines[version.pk] = _baseline(version.pk, policy.pinned_baseline_id if policy else None, production=production.get(version.model_id))
    wanted = {version.pk for version in versions} | {pk for pk in baselines.values() if pk}
    metrics: dict = {pk: {} for pk in wanted}
    numbers = {}
    for version_id, number, name, value in ModelVersion.objects.filter(pk__in=wanted).values_list("pk", "number", "metrics__name", "metrics__value"):
        numbers[version_id] = number
        if name is not None:
            metrics[version_id][name] = value
    gates = {}
    for version in versions:
        baseline = baselines[version.pk]
        status, _ = quality.evaluate(_rules(policies.get(version.model_id)), metrics[version.pk], metrics[baseline] if baseline else None)
        gates[version.pk] = (status, numbers.get(baseline) if baseline else None)
    return gates


def latest_job(version: ModelVersion) -> ValidationJob | None:
    """The version's newest validation job with its checks and quality baseline, for the job panel."""
    return ValidationJob.objects.filter(version=version).select_related("quality_baseline").prefetch_related("checks").first()


def unsafe_finding_blocks(version: ModelVersion) -> bool:
    """A version whose latest finished validation found unsafe serialization may never leave draft."""
    return ValidationJob.objects.filter(version=version, unsafe_finding=True).exists()
