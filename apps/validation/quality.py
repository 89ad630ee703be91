"""The quality gate's arithmetic: each rule compares the candidate's metric with the baseline's."""

from dataclasses import dataclass

from .models import Direction, QualityStatus, RegressionKind, Verdict

EPSILON = 1e-12


@dataclass(frozen=True)
class Rule:
    metric: str
    direction: str  # Direction: which way is better
    allowed_regression: float = 0.0
    regression_kind: str = RegressionKind.ABSOLUTE  # or RELATIVE: a fraction of the baseline value
    min_value: float | None = None
    max_value: float | None = None


def evaluate_rule(rule: Rule, candidate: dict[str, float], baseline: dict[str, float] | None) -> dict:
    result = {
        "metric": rule.metric, "direction": rule.direction, "allowed_regression": rule.allowed_regression,
        "regression_kind": rule.regression_kind, "min_value": rule.min_value, "max_value": rule.max_value,
        "candidate": candidate.get(rule.metric), "baseline": None, "delta": None, "regression": None,
    }
    value = candidate.get(rule.metric)
    if value is None:
        return {**result, "verdict": Verdict.FAIL.value, "reason": f"the candidate has no metric '{rule.metric}'"}
    reasons = []
    if rule.min_value is not None and value < rule.min_value:
        reasons.append(f"{value} is below the minimum {rule.min_value}")
    if rule.max_value is not None and value > rule.max_value:
        reasons.append(f"{value} is above the maximum {rule.max_value}")
    base = (baseline or {}).get(rule.metric)
    if baseline is not None and base is None:
        note = f"the baseline has no metric '{rule.metric}'; only bounds were checked"
    elif base is not None:
        delta = value - base
        worse_by = -delta if rule.direction == Direction.HIGHER else delta
        if rule.regression_kind == RegressionKind.RELATIVE:
            regression = worse_by / abs(base) if base else (float("inf") if worse_by > 0 else 0.0)
        else:
            regression = worse_by
        result.update(baseline=base, delta=delta, regression=regression)
        if regression > rule.allowed_regression + EPSILON:
            kind = RegressionKind.RELATIVE.value if rule.regression_kind == RegressionKind.RELATIVE else RegressionKind.ABSOLUTE.value
            reasons.append(f"{kind} regression {regression:.6g} exceeds the allowed {rule.allowed_regression:.6g}")
        note = f"delta {delta:+.6g} against the baseline"
    else:
        note = "no baseline to compare with; only bounds were checked"
    if reasons:
        return {**result, "verdict": Verdict.FAIL.value, "reason": "; ".join(reasons)}
    return {**result, "verdict": Verdict.PASS.value, "reason": note}


def evaluate(rules: list[Rule], candidate: dict[str, float], baseline: dict[str, float] | None) -> tuple[str, list[dict]]:
    """Return the gate's QualityStatus (passed with no rules) and one result per rule."""
    results = [evaluate_rule(rule, candidate, baseline) for rule in rules]
    return (QualityStatus.FAILED.value if any(r["verdict"] == Verdict.FAIL for r in results) else QualityStatus.PASSED.value), results
