import logging

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from django.conf import settings

from . import services

logger = logging.getLogger(__name__)


class ValidationTask(Task):
    def apply_async(self, args=None, kwargs=None, **options):
        # Celery would stamp the sender's limits into the message; without them the worker applies its own settings'.
        options.setdefault("time_limit", None)
        options.setdefault("soft_time_limit", None)
        return super().apply_async(args, kwargs, **options)

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        # Celery calls this in the worker's main process after the hard time limit killed the pool child: record the
        # job as stopped now. (Where Celery does not, the lease runs out and the attempt count ends it.)
        if isinstance(exc, TimeLimitExceeded) and args:
            services.validation_stop(
                job_id=args[0], reason=f"the worker's hard time limit of {settings.VALIDATION_TASK_TIME_LIMIT} s killed the job's process"
            )


@shared_task(
    base=ValidationTask,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=settings.VALIDATION_MAX_ATTEMPTS,
    soft_time_limit=settings.VALIDATION_TASK_SOFT_TIME_LIMIT,
    time_limit=settings.VALIDATION_TASK_TIME_LIMIT,
)
def run_validation(self, job_id: int) -> None:
    try:
        services.validation_run(job_id=job_id)
    except SoftTimeLimitExceeded:  # struck outside the checks; inside them validation_run records it itself
        services.validation_stop(job_id=job_id, reason=f"the worker's soft time limit of {settings.VALIDATION_TASK_SOFT_TIME_LIMIT} s stopped the job")
    except services.TransientError as exc:  # the job is queued again; validation_run gives up after the last attempt
        raise self.retry(exc=exc, countdown=min(300, 2 ** (self.request.retries + 1)))


@shared_task
def sweep_validation_jobs() -> dict:
    try:
        return services.validation_sweep()
    except SoftTimeLimitExceeded:  # the next beat runs it again; every step of the sweep is idempotent
        logger.warning("The validation sweep ran past the soft time limit of %s s and stopped.", settings.CELERY_TASK_SOFT_TIME_LIMIT)
        return {}
