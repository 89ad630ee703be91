import pytest

from apps.validation.quality import Rule, evaluate, evaluate_rule
from apps.validation.services import validation_policy_update, validation_run
from tests.factories import promote, register_version

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "rule, candidate, baseline, verdict, regression",
    [
        (Rule("acc", "higher", 0.01, "absolute"), 0.905, 0.91, "pass", 0.005),
        (Rule("acc", "higher", 0.01, "absolute"), 0.89, 0.91, "fail", 0.02),
        (Rule("acc", "higher", 0.0, "absolute"), 0.95, 0.91, "pass", -0.04),
        (Rule("loss", "lower", 0.1, "relative"), 0.54, 0.5, "pass", 0.08),
        (Rule("loss", "lower", 0.1, "relative"), 0.56, 0.5, "fail", 0.12),
        (Rule("acc", "higher", 0.05, "relative"), 0.76, 0.8, "pass", 0.05),
        (Rule("acc", "higher", 0.05, "relative"), 0.75, 0.8, "fail", 0.0625),
        (Rule("latency", "lower", 5, "absolute"), 104, 100, "pass", 4),
        (Rule("latency", "lower", 5, "absolute"), 106, 100, "fail", 6),
    ],
)
def test_regression_arithmetic_for_both_directions_and_kinds(rule, candidate, baseline, verdict, regression):
    result = evaluate_rule(rule, {rule.metric: candidate}, {rule.metric: baseline})
    assert result["verdict"] == verdict
    assert result["regression"] == pytest.approx(regression)
    assert result["delta"] == pytest.approx(candidate - baseline)


def test_bounds_apply_with_or_without_a_baseline():
    rule = Rule("acc", "higher", 1.0, "absolute", min_value=0.8, max_value=1.0)
    assert evaluate_rule(rule, {"acc": 0.7}, None)["verdict"] == "fail"
    assert evaluate_rule(rule, {"acc": 0.9}, None)["reason"].startswith("no baseline")
    assert evaluate_rule(rule, {"acc": 0.7}, {"acc": 0.7})["verdict"] == "fail"


def test_a_metric_the_rule_names_but_the_candidate_lacks_fails():
    status, results = evaluate([Rule("f1", "higher")], {"acc": 1.0}, {"f1": 0.5})
    assert status == "failed" and "no metric 'f1'" in results[0]["reason"]


def test_a_relative_rule_against_a_zero_baseline_fails_on_any_regression():
    assert evaluate_rule(Rule("err", "lower", 0.5, "relative"), {"err": 0.1}, {"err": 0.0})["verdict"] == "fail"
    assert evaluate_rule(Rule("err", "lower", 0.5, "relative"), {"err": 0.0}, {"err": 0.0})["verdict"] == "pass"


def _run(version):
    job = version.validation_jobs.order_by("-created_at").first()
    validation_run(job_id=job.pk)
    job.refresh_from_db()
    return job


def test_the_job_compares_with_the_production_version(model, owner, reviewer):
    rules = [{"metric": "acc", "direction": "higher", "allowed_regression": 0.01, "regression_kind": "absolute", "min_value": None, "max_value": None}]
    validation_policy_update(model=model, actor=owner, required_file_patterns=[], pinned_baseline=None, rules=rules)
    first = register_version(model, owner, metrics={"acc": 0.9})
    first_job = _run(first)
    assert first_job.quality_status == "passed" and first_job.quality_baseline is None
    assert first_job.quality_rules[0]["reason"].startswith("no baseline")
    promote(first, requester=owner, approver=reviewer)
    worse = _run(register_version(model, owner, metrics={"acc": 0.85}))
    assert worse.status == "failed" and worse.quality_status == "failed" and worse.quality_baseline == first
    assert worse.quality_rules[0]["baseline"] == 0.9 and worse.quality_rules[0]["candidate"] == 0.85
    better = _run(register_version(model, owner, metrics={"acc": 0.95}))
    assert better.status == "passed" and better.quality_status == "passed"


def test_a_pinned_baseline_replaces_production(model, owner):
    pinned = register_version(model, owner, metrics={"acc": 0.99})
    rules = [{"metric": "acc", "direction": "higher", "allowed_regression": 0.0, "regression_kind": "absolute", "min_value": None, "max_value": None}]
    validation_policy_update(model=model, actor=owner, required_file_patterns=[], pinned_baseline=pinned, rules=rules)
    job = _run(register_version(model, owner, metrics={"acc": 0.95}))
    assert job.quality_baseline == pinned and job.quality_status == "failed"


def test_only_managers_edit_the_policy(model, reviewer):
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        validation_policy_update(model=model, actor=reviewer, required_file_patterns=[], pinned_baseline=None, rules=[])
