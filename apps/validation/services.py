import logging
import traceback
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import OperationalError, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.audit import services as audit
from apps.models.models import RegisteredModel
from apps.models.permissions import Action, require
from apps.versions.models import ModelVersion
from apps.versions.selectors import production_version
from registry_site import broker

from . import quality
from .checks import completeness, dependencies, inspection, integrity, pickle_scan
from .checks.base import CheckContext, Outcome
from .models import CheckResult, JobStatus, QualityRule, ValidationJob, ValidationPolicy

logger = logging.getLogger(__name__)

CHECKS = [integrity, completeness, inspection, pickle_scan, dependencies]


class TransientError(Exception):
    """A failure worth retrying (storage or database unreachable); the job goes back to the queue."""


def validation_job_create(*, version: ModelVersion) -> ValidationJob:
    """Create the job row in the caller's transaction and send it to a worker once that transaction commits.

    If the broker is down then, the row stays queued and `validation_sweep` sends it later.
    """
    job = ValidationJob.objects.create(version=version)
    transaction.on_commit(lambda: validation_send(job_id=job.pk))
    return job


def validation_send(*, job_id: int) -> bool:
    """Wake a worker for a committed job: one bounded attempt (registry_site.broker.publish). False if the broker did
    not take it; the job stays queued without `enqueued_at` and `validation_sweep` sends it later."""
    from .tasks import run_validation

    if not broker.publish(run_validation, args=[job_id]):
        return False
    ValidationJob.objects.filter(pk=job_id).update(enqueued_at=timezone.now())
    return True


@transaction.atomic
def validation_rerun(*, version: ModelVersion, actor) -> ValidationJob:
    require(actor, Action.MANAGE, version.model)
    job = validation_job_create(version=version)
    audit.record(actor=actor, obj=job, action="validation.rerun", after={"version": version.number}, registered_model_id=version.model_id)
    return job


def validation_sweep() -> dict:
    """Resend jobs that never reached a worker, and take back running jobs whose worker stopped beating."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.VALIDATION_LEASE_SECONDS)
    reclaimed = ValidationJob.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=stale).update(status=JobStatus.QUEUED, enqueued_at=None)
    resend_before = now - timedelta(seconds=settings.VALIDATION_RESEND_AFTER_SECONDS)
    waiting = ValidationJob.objects.filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=resend_before), status=JobStatus.QUEUED)
    sent = sum(validation_send(job_id=job_id) for job_id in waiting.values_list("pk", flat=True))
    return {"reclaimed": reclaimed, "sent": sent}


def _claim(job_id: int) -> bool:
    """Atomically take a queued job, or a running one whose lease ran out. A finished job is never run again."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.VALIDATION_LEASE_SECONDS)
    claimable = Q(status=JobStatus.QUEUED) | Q(status=JobStatus.RUNNING, heartbeat_at__lt=stale)
    return bool(
        ValidationJob.objects.filter(claimable, pk=job_id).update(
            status=JobStatus.RUNNING, started_at=now, heartbeat_at=now, finished_at=None, attempts=F("attempts") + 1, error=""
        )
    )


def _policy(model: RegisteredModel) -> ValidationPolicy | None:
    return ValidationPolicy.objects.filter(model=model).prefetch_related("rules").select_related("pinned_baseline").first()


def quality_gate(version: ModelVersion, policy: ValidationPolicy | None) -> tuple[str, ModelVersion | None, list[dict]]:
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


def validation_run(*, job_id: int) -> ValidationJob | None:
    """Run every check of a job on a worker. Safe to call twice: only the caller that claims the job runs it."""
    if not _claim(job_id):
        return None
    job = ValidationJob.objects.select_related("version__model").get(pk=job_id)
    version = job.version
    policy = _policy(version.model)

    def beat() -> None:
        ValidationJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(heartbeat_at=timezone.now())

    context = CheckContext(
        version=version,
        artifacts=list(version.artifacts.all()),
        required_file_patterns=list(policy.required_file_patterns) if policy else [],
        heartbeat=beat,
    )
    outcomes: list[tuple[object, Outcome]] = []
    try:
        for check in CHECKS:
            try:
                outcome = check.run(context)
            except FileNotFoundError as exc:  # a blob gone from storage will not come back by retrying
                outcome = Outcome("error", f"an artifact is missing from storage: {exc}"[:480], {})
            except (OSError, OperationalError) as exc:
                raise TransientError(f"{check.name}: {exc}") from exc
            except Exception as exc:  # a bug or an input no check foresaw: recorded, not hidden
                logger.exception("Check %s crashed on job %s", check.name, job_id)
                outcome = Outcome("error", f"the check crashed: {exc}"[:480], {"traceback": traceback.format_exc()[-4000:]})
            outcomes.append((check, outcome))
            beat()
        quality_status, baseline, rule_results = quality_gate(version, policy)
    except TransientError:
        ValidationJob.objects.filter(pk=job_id).update(status=JobStatus.QUEUED, enqueued_at=timezone.now())
        raise
    return _finish(job, outcomes, context.inspection, quality_status, baseline, rule_results)


@transaction.atomic
def _finish(job, outcomes, found: dict, quality_status: str, baseline, rule_results) -> ValidationJob:
    job = ValidationJob.objects.select_for_update().get(pk=job.pk)
    if job.status != JobStatus.RUNNING:
        return job  # another worker took it over after our lease ran out and finished first
    CheckResult.objects.filter(job=job).delete()
    CheckResult.objects.bulk_create(
        CheckResult(job=job, name=check.name, verdict=o.verdict, summary=o.summary[:500], details=o.details, checker_version=check.version, position=i)
        for i, (check, o) in enumerate(outcomes)
    )
    verdicts = {o.verdict for _, o in outcomes}
    if "error" in verdicts:
        job.status = JobStatus.ERROR
    elif "fail" in verdicts or quality_status == "failed":
        job.status = JobStatus.FAILED
    else:
        job.status = JobStatus.PASSED
    job.unsafe_finding = any(check is pickle_scan and o.verdict == "fail" for check, o in outcomes)
    job.quality_status = quality_status
    job.quality_baseline = baseline
    job.quality_rules = rule_results
    job.finished_at = timezone.now()
    job.save()
    if found:
        ModelVersion.objects.filter(pk=job.version_id).update(inspection=found, updated_at=timezone.now())
    audit.record(
        actor=None, obj=job, action="validation.finished", registered_model_id=job.version.model_id,
        after={"version": job.version.number, "status": job.status, "quality": quality_status, "unsafe": job.unsafe_finding},
    )
    return job


def validation_give_up(*, job_id: int, error: str) -> None:
    """After the last retry: record the job as errored, so it shows and the sweep stops resending it."""
    ValidationJob.objects.filter(pk=job_id).exclude(status__in=[JobStatus.PASSED, JobStatus.FAILED]).update(
        status=JobStatus.ERROR, error=error[:2000], finished_at=timezone.now()
    )


@transaction.atomic
def validation_policy_update(
    *, model: RegisteredModel, actor, required_file_patterns: list[str], pinned_baseline: ModelVersion | None, rules: list[dict]
) -> ValidationPolicy:
    """Replace a model's validation policy: required files, baseline pin and quality rules."""
    require(actor, Action.MANAGE, model)
    if pinned_baseline is not None and pinned_baseline.model_id != model.pk:
        raise ValidationError({"pinned_baseline": ["The baseline must be a version of this model."]})
    metrics = [rule["metric"] for rule in rules]
    if len(set(metrics)) != len(metrics):
        raise ValidationError({"rules": ["Each metric may have one rule."]})
    policy, _ = ValidationPolicy.objects.select_for_update().get_or_create(model=model)
    before = _policy_snapshot(policy)
    policy.required_file_patterns = required_file_patterns
    policy.pinned_baseline = pinned_baseline
    policy.save()
    policy.rules.all().delete()
    QualityRule.objects.bulk_create(QualityRule(policy=policy, **rule) for rule in rules)
    audit.record(actor=actor, obj=policy, action="validation_policy.updated", before=before, after=_policy_snapshot(policy), registered_model_id=model.pk)
    return policy


def _policy_snapshot(policy: ValidationPolicy) -> dict:
    return {
        "required_file_patterns": policy.required_file_patterns,
        "pinned_baseline": policy.pinned_baseline.number if policy.pinned_baseline_id else None,
        "rules": [
            {k: getattr(r, k) for k in ("metric", "direction", "allowed_regression", "regression_kind", "min_value", "max_value")}
            for r in policy.rules.all()
        ],
    }


def unsafe_finding_blocks(version: ModelVersion) -> bool:
    """A version whose latest finished validation found unsafe serialization may never leave draft."""
    return ValidationJob.objects.filter(version=version, unsafe_finding=True).exists()
