from celery import shared_task

from .idempotency import idempotency_records_purge


@shared_task
def purge_idempotency_records() -> dict:
    """Periodic: forget the answers to Idempotency-Keys older than IDEMPOTENCY_KEY_HOURS."""
    return {"deleted": idempotency_records_purge()}
