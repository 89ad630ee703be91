from celery import shared_task

from . import services


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=6)
def run_validation(self, job_id: int) -> None:
    try:
        services.validation_run(job_id=job_id)
    except services.TransientError as exc:
        if self.request.retries >= self.max_retries:
            services.validation_give_up(job_id=job_id, error=f"Gave up after {self.max_retries} retries: {exc}")
            return
        raise self.retry(exc=exc, countdown=min(300, 2 ** (self.request.retries + 1)))


@shared_task
def sweep_validation_jobs() -> dict:
    return services.validation_sweep()
