"""Reads for the comparison page, in a fixed number of queries whatever the number of versions compared.

Only versions the user may view are ever loaded: a version that is hidden from them is counted, never named.
"""

from urllib.parse import urlencode

from django.db.models import Q

from apps.validation.models import QualityRule
from apps.versions.lifecycle import Stage
from apps.versions.models import Metric, ModelVersion, ProductionPointerChange

from .compare import (
    MAX_VERSIONS,
    Snapshot,
    chart_data,
    compare,
    metric_history,
    parse_refs,
    snapshot_of,
    unknown_notice,
)
from .selectors import versions_with_details

HISTORY_LIMIT = 500  # versions of the first model drawn in the history chart (the newest ones)


def comparable_versions(user, refs: list[tuple[str, int]]) -> tuple[list[ModelVersion], dict[str, ModelVersion]]:
    """The visible versions among `refs` in the order asked, and the production version of each visible model named.

    One query for the versions (plus the fixed prefetches of `versions_with_details`).
    """
    if not refs:
        return [], {}
    wanted = Q()
    for name, number in refs:
        wanted |= Q(model__name=name, number=number)
    names = {name for name, _ in refs}
    queryset = ModelVersion.objects.visible_to(user).filter(wanted | Q(model__name__in=names, stage=Stage.PRODUCTION))
    loaded = list(versions_with_details(queryset))
    by_ref = {(v.model.name, v.number): v for v in loaded}
    production = {v.model.name: v for v in loaded if v.stage == Stage.PRODUCTION}
    return [by_ref[ref] for ref in refs if ref in by_ref], production


def metric_directions(model_id) -> dict[str, str]:
    """metric -> "higher" / "lower", from the model's quality rules; a metric without a rule has no direction."""
    return dict(QualityRule.objects.filter(policy__model_id=model_id).values_list("metric", "direction"))


def history_for(version: ModelVersion, *, chosen: set[int], preferred: list[str]) -> dict:
    """Every metric of the newest versions of `version`'s model over time, with the production pointer's changes."""
    model = version.model
    newest = ModelVersion.objects.filter(model=model).order_by("-number").values("pk")[:HISTORY_LIMIT]
    rows = (
        Metric.objects.filter(version__in=newest)
        .order_by("version__created_at", "version__number", "name")
        .values_list("version__number", "version__created_at", "version__stage", "name", "value")
    )
    changes = ProductionPointerChange.objects.filter(model=model).values_list("changed_at", "kind", "version__number", "previous_version__number")
    return metric_history(model.name, rows, changes, chosen=chosen, preferred=preferred)


def comparison_context(user, raw_refs: list[str], baseline: str) -> dict:
    """Everything the comparison page shows for `?v=<model>:<number>&...&baseline=first|production`."""
    refs, malformed = parse_refs(raw_refs)
    baseline = "production" if baseline == "production" else "first"
    context = {"baseline": baseline, "problem": "", "notes": [], "max_versions": MAX_VERSIONS, "too_many": False}
    if len(refs) + malformed > MAX_VERSIONS:
        context.update(too_many=True, problem=f"Compare at most {MAX_VERSIONS} versions at a time; this link names {len(refs) + malformed}.")
        return context
    versions, production = comparable_versions(user, refs)
    context["unknown"] = unknown_notice(len(refs) + malformed - len(versions))
    # The shareable links name only what this user may see, so a hidden version never reaches the page, not even in a URL.
    asked = [("v", f"{v.model.name}:{v.number}") for v in versions]
    context["links"] = {"production": "?" + urlencode([*asked, ("baseline", "production")])}
    if len(asked) >= 2:
        context["links"]["first"] = "?" + urlencode([*asked, ("baseline", "first")])
    baseline_index = 0
    if versions and baseline == "production":
        first = versions[0]
        current = production.get(first.model.name)
        if current is None:
            context["notes"].append(f"{first.model.name} has no version in production; deltas are against the first version.")
        elif current in versions:
            baseline_index = versions.index(current)
        else:
            versions.insert(0, current)
            context["notes"].append(f"{first.model.name} v{current.number} is in production and was added as the baseline.")
    if len(versions) < 2:
        context["problem"] = "Choose at least two versions to compare (tick them in a model's versions table)."
        return context
    snapshots: list[Snapshot] = [snapshot_of(v) for v in versions]
    sections = compare(snapshots, baseline=baseline_index, directions=metric_directions(versions[0].model_id))
    history = history_for(
        versions[0],
        chosen={s.number for s in snapshots if s.model == snapshots[0].model},
        preferred=[row["name"] for row in sections["metrics"]],
    )
    base = snapshots[baseline_index]
    context.update(
        columns=snapshots,
        baseline_label=f"{base.label}, the production version" if baseline == "production" and base.stage == Stage.PRODUCTION else f"{base.label}, the first version",
        baseline_index=baseline_index,
        first_model=versions[0].model,
        **sections,
        charts=chart_data(snapshots, sections["metrics"], history, baseline=baseline_index),
    )
    return context
