import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from . import services
from .models import DeliveryStatus

logger = logging.getLogger(__name__)

# Both tasks run under CELERY_TASK_SOFT_TIME_LIMIT / CELERY_TASK_TIME_LIMIT (settings); past the hard limit the
# pool child is killed, and the delivery's lease running out hands it to the sweep like any lost attempt.


@shared_task(acks_late=True, reject_on_worker_lost=True)
def deliver_webhook(delivery_id: int) -> None:
    """One attempt; a failed one is handed back to the broker for its backoff time (the sweep covers a lost message)."""
    try:
        delivery = services.delivery_attempt(delivery_id=delivery_id)
    except SoftTimeLimitExceeded:  # the attempt stays claimed; after WEBHOOK_LEASE_SECONDS the sweep records it and retries
        logger.warning("Delivery %s ran past the soft time limit of %s s.", delivery_id, settings.CELERY_TASK_SOFT_TIME_LIMIT)
        return
    if delivery is not None and delivery.status == DeliveryStatus.FAILED:
        services.delivery_send(delivery_id=delivery.pk, due_at=delivery.next_attempt_at)


@shared_task
def sweep_webhook_deliveries() -> dict:
    try:
        return services.delivery_sweep()
    except SoftTimeLimitExceeded:  # the next beat runs it again
        logger.warning("The webhook sweep ran past the soft time limit of %s s and stopped.", settings.CELERY_TASK_SOFT_TIME_LIMIT)
        return {}
