from celery import shared_task

from . import services
from .models import DeliveryStatus


@shared_task(acks_late=True, reject_on_worker_lost=True)
def deliver_webhook(delivery_id: int) -> None:
    """One attempt; a failed one is handed back to the broker for its backoff time (the sweep covers a lost message)."""
    delivery = services.delivery_attempt(delivery_id=delivery_id)
    if delivery is not None and delivery.status == DeliveryStatus.FAILED:
        services.delivery_send(delivery_id=delivery.pk, due_at=delivery.next_attempt_at)


@shared_task
def sweep_webhook_deliveries() -> dict:
    return services.delivery_sweep()
