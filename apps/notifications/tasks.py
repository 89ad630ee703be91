import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from . import services
from .models import EmailStatus

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def send_notification_email(notification_id: int) -> None:
    """One attempt; a failed one is handed back to the broker for its backoff time (the sweep covers a lost message)."""
    try:
        notification = services.email_attempt(notification_id=notification_id)
    except SoftTimeLimitExceeded:  # the email stays claimed; after the lease the sweep takes it back and retries
        logger.warning("Email of notification %s ran past the soft time limit of %s s.", notification_id, settings.CELERY_TASK_SOFT_TIME_LIMIT)
        return
    if notification is not None and notification.email_status == EmailStatus.FAILED:
        services.email_send(notification_id=notification.pk, due_at=notification.email_next_attempt_at)


@shared_task
def sweep_notification_emails() -> dict:
    try:
        return services.email_sweep()
    except SoftTimeLimitExceeded:  # the next beat runs it again
        logger.warning("The notification email sweep ran past the soft time limit of %s s and stopped.", settings.CELERY_TASK_SOFT_TIME_LIMIT)
        return {}
