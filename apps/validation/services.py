import logging
import time
import traceback
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import OperationalError, transaction
from django.db.models import Case, F, Q, Value, When
from django.urls import reverse
from django.utils import timezone

from apps.audit import services as audit
from apps.models.models import RegisteredModel
from apps.models.permissions import Action, require, users_holding
from apps.notifications.models import Kind
from apps.notifications.services import notify
from apps.versions.models import ModelVersion
from registry_site import broker

from .checks import completeness, dependencies, inspection, integrity, pickle_scan
from .checks.base import BudgetExceeded, CheckContext, Outcome
from .models import CheckResult, JobStatus, QualityRule, QualityStatus, ValidationJob, ValidationPolicy, Verdict
from .selectors import quality_gate, validation_policy

logger = logging.getLogger(__name__)

CHECKS = [integrity, completeness, inspection, pickle_scan, dependencies]


class TransientError(Exception):
    """A failure worth retrying (storage or database unreachable); the job goes back to the queue."""


def validation_job_create(*, version: ModelVersion) -> ValidationJob:
    """Create the job row in the caller's transaction and send it to a worker once that transaction commits.

    If the broker is down then, the row stays queued and `validation_sweep` sends it later.
    """
    job = ValidationJob.objects.create(version=version)
    # Robust: the caller's write has committed and its answer is ready; a failure here (the database gone after the
    # commit) is logged, and the sweep sends the job later.
    transaction.on_commit(lambda: validation_send(job_id=job.pk), robust=True)
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
    """Resend jobs that never reached a worker, take back running jobs whose worker stopped beating, and give up
    on jobs that have used all their attempts (recorded as `error` with the last reason; never sent again)."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.VALIDATION_LEASE_SECONDS)
    hard_limit = settings.VALIDATION_JOB_HARD_LIMIT_SECONDS
    reason = Case(
        When(started_at__lt=now - timedelta(seconds=hard_limit), then=Value(f"the attempt ran past the hard limit of {hard_limit} s and its worker stopped")),
        default=Value(f"the worker stopped during the attempt (no heartbeat for {settings.VALIDATION_LEASE_SECONDS} s)"),
    )
    reclaimed = ValidationJob.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=stale).update(status=JobStatus.QUEUED, enqueued_at=None, error=reason)
    exhausted = ValidationJob.objects.filter(status=JobStatus.QUEUED, attempts__gte=settings.VALIDATION_MAX_ATTEMPTS)
    gave_up = sum(validation_give_up(job_id=job_id, reason=error) for job_id, error in exhausted.values_list("pk", "error"))
    resend_before = now - timedelta(seconds=settings.VALIDATION_RESEND_AFTER_SECONDS)
    waiting = ValidationJob.objects.filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=resend_before), status=JobStatus.QUEUED)
    sent = sum(validation_send(job_id=job_id) for job_id in waiting.values_list("pk", flat=True))
    return {"reclaimed": reclaimed, "sent": sent, "gave_up": gave_up}


def _claim(job_id: int) -> bool:
    """Atomically take a queued job, or a running one whose lease ran out, while it has attempts left.
    A finished job is never run again; one out of attempts is left for the sweep to give up on."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.VALIDATION_LEASE_SECONDS)
    claimable = Q(status=JobStatus.QUEUED) | Q(status=JobStatus.RUNNING, heartbeat_at__lt=stale)
    return bool(
        ValidationJob.objects.filter(claimable, pk=job_id, attempts__lt=settings.VALIDATION_MAX_ATTEMPTS).update(
            status=JobStatus.RUNNING, started_at=now, heartbeat_at=now, finished_at=None, attempts=F("attempts") + 1
        )
    )


def validation_run(*, job_id: int) -> ValidationJob | None:
    """Run every check of a job on a worker. Safe to call twice: only the caller that claims the job runs it.

    Each check has VALIDATION_CHECK_BUDGET_SECONDS (past it, its verdict is `error` and the next check runs); the
    job has VALIDATION_JOB_HARD_LIMIT_SECONDS, and the Celery soft time limit backs that up: past either, the job
    is recorded as `error` with the reason and the checks done so far, and is not retried.
    """
    if not _claim(job_id):
        return None
    job = ValidationJob.objects.select_related("version__model").get(pk=job_id)
    version = job.version
    policy = validation_policy(version.model)

    def beat() -> None:
        ValidationJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(heartbeat_at=timezone.now())

    context = CheckContext(
        version=version,
        artifacts=list(version.artifacts.all()),
        required_file_patterns=list(policy.required_file_patterns) if policy else [],
        heartbeat=beat,
        job_deadline=time.monotonic() + settings.VALIDATION_JOB_HARD_LIMIT_SECONDS,
        job_limit_seconds=settings.VALIDATION_JOB_HARD_LIMIT_SECONDS,
        check_budget_seconds=settings.VALIDATION_CHECK_BUDGET_SECONDS,
    )
    outcomes: list[tuple[object, Outcome]] = []
    running = None
    try:
        for check in CHECKS:
            running = check
            context.start_check(check.name)
            try:
                outcome = check.run(context)
            except BudgetExceeded as exc:
                if exc.job_limit:
                    raise
                outcome = Outcome(Verdict.ERROR, exc.reason, {"budget_seconds": settings.VALIDATION_CHECK_BUDGET_SECONDS})
            except SoftTimeLimitExceeded:
                raise
            except FileNotFoundError as exc:  # a blob gone from storage will not come back by retrying
                outcome = Outcome(Verdict.ERROR, f"an artifact is missing from storage: {exc}"[:480], {})
            except (OSError, OperationalError) as exc:
                raise TransientError(f"{check.name}: {exc}") from exc
            except Exception as exc:  # a bug or an input no check foresaw: recorded, not hidden
                logger.exception("Check %s crashed on job %s", check.name, job_id)
                outcome = Outcome(Verdict.ERROR, f"the check crashed: {exc}"[:480], {"traceback": traceback.format_exc()[-4000:]})
            outcomes.append((check, outcome))
            running = None
            beat()
        quality_status, baseline, rule_results = quality_gate(version, policy)
    except (BudgetExceeded, SoftTimeLimitExceeded) as exc:
        stopped = exc.reason if isinstance(exc, BudgetExceeded) else _soft_limit_reason(running.name if running else "the bookkeeping between checks")
        if running is not None:
            outcomes.append((running, Outcome(Verdict.ERROR, stopped[:480], {"job_limit_seconds": settings.VALIDATION_JOB_HARD_LIMIT_SECONDS})))
        return _finish(job, outcomes, context.inspection, "", None, [], error=f"{stopped} (attempt {job.attempts})")
    except TransientError as exc:
        if job.attempts >= settings.VALIDATION_MAX_ATTEMPTS:
            validation_give_up(job_id=job_id, reason=str(exc))
            return None
        ValidationJob.objects.filter(pk=job_id).update(status=JobStatus.QUEUED, enqueued_at=timezone.now(), error=str(exc)[:2000])
        raise
    return _finish(job, outcomes, context.inspection, quality_status, baseline, rule_results)


def _soft_limit_reason(where: str) -> str:
    return f"the job ran past the worker's soft time limit of {settings.VALIDATION_TASK_SOFT_TIME_LIMIT} s during {where}"


@transaction.atomic
def _finish(job, outcomes, found: dict, quality_status: str, baseline, rule_results, error: str = "") -> ValidationJob:
    job = ValidationJob.objects.select_for_update().get(pk=job.pk)
    if job.status != JobStatus.RUNNING:
        return job  # another worker took it over after our lease ran out and finished first
    CheckResult.objects.filter(job=job).delete()
    CheckResult.objects.bulk_create(
        CheckResult(job=job, name=check.name, verdict=o.verdict, summary=o.summary[:500], details=o.details, checker_version=check.version, position=i)
        for i, (check, o) in enumerate(outcomes)
    )
    verdicts = {o.verdict for _, o in outcomes}
    if error or Verdict.ERROR in verdicts:
        job.status = JobStatus.ERROR
    elif Verdict.FAIL in verdicts or quality_status == QualityStatus.FAILED:
        job.status = JobStatus.FAILED
    else:
        job.status = JobStatus.PASSED
    job.error = error[:2000]
    job.unsafe_finding = any(check is pickle_scan and o.verdict == Verdict.FAIL for check, o in outcomes)
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
    if job.status != JobStatus.PASSED:
        failed = [f"{check.name}: {o.summary}" for check, o in outcomes if o.verdict in (Verdict.FAIL, Verdict.ERROR)]
        if quality_status == QualityStatus.FAILED:
            failed.append("quality gate: " + "; ".join(f"{r['metric']}: {r['reason']}" for r in rule_results if r["verdict"] == Verdict.FAIL))
        _notify_failure(job, "\n".join(failed + ([error] if error else [])))
    return job


def _notify_failure(job: ValidationJob, details: str) -> None:
    """Tell the model's managers that a version failed validation (in the caller's transaction)."""
    version = job.version
    notify(
        recipients=users_holding(version.model, Action.MANAGE), kind=Kind.VALIDATION_FAILED, model=version.model,
        title=f"Validation {job.status} on {version.model.name} v{version.number}", body=details[:4000],
        url=reverse("versions:detail", args=[version.model.name, version.number]),
    )


def validation_give_up(*, job_id: int, reason: str) -> bool:
    """Record an unfinished job as `error` for good, "gave up after N attempts: <reason>": the page and the API show
    it and the sweep stops resending it. Returns False if the job had finished meanwhile."""

    def describe(job: ValidationJob) -> str:
        return f"gave up after {job.attempts} attempt{'' if job.attempts == 1 else 's'}: {reason or 'no reason was recorded'}"

    return _end_in_error(job_id, describe, action="validation.gave_up")


def validation_stop(*, job_id: int, reason: str) -> bool:
    """Record a running job stopped by a time limit outside `validation_run`'s own handling (the worker's hard limit
    killed its process). Not retried: the same input would hit the same limit."""
    return _end_in_error(job_id, lambda job: f"{reason} (attempt {job.attempts})", action="validation.stopped")


@transaction.atomic
def _end_in_error(job_id: int, describe, *, action: str) -> bool:
    job = ValidationJob.objects.select_for_update().select_related("version").filter(pk=job_id).first()
    if job is None or job.is_finished:
        return False
    job.status = JobStatus.ERROR
    job.error = describe(job)[:2000]
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "error", "finished_at"])
    audit.record(
        actor=None, obj=job, action=action, registered_model_id=job.version.model_id,
        after={"version": job.version.number, "status": job.status, "attempts": job.attempts, "error": job.error},
    )
    _notify_failure(job, job.error)
    return True


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
