"""Notifications and their emails.

`notify` is called by the services of the apps that make things happen (approvals, validation, comments), inside their
transaction: the notification rows commit with the event or not at all, and each row whose recipient wants an email is
that email's outbox. Once the transaction commits a Celery message is sent per email; if the broker is down then, the
beat sweep (`email_sweep`) sends it later. A worker claims an email with one conditional UPDATE (so a duplicate message
does nothing), sends it through Django's email framework and records the outcome; a failure is retried with backoff
(apps.web.outbox, NOTIFICATION_EMAIL_* settings) until the last attempt, then given up.
No email is ever sent inside a request.
"""

from collections.abc import Iterable

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.models.models import RegisteredModel
from apps.web.outbox import Outbox

from .models import EMAIL_RETRYABLE, EmailPreference, EmailStatus, Kind, Notification



@transaction.atomic
def notify(*, recipients: Iterable, kind: str, model: RegisteredModel, title: str, url: str, body: str = "", actor=None) -> list[Notification]:
    """Tell each recipient (once, never the actor, never an inactive user) about something that happened to `model`.

    Call it inside the transaction of the event; emails go out on a worker after that transaction commits.
    """
    if kind not in Kind.values:
        raise ValueError(f"Unknown notification kind {kind!r}; known kinds: {', '.join(Kind.values)}.")
    actor_pk = getattr(actor, "pk", None)
    users = {user.pk: user for user in recipients if user.is_active and user.pk != actor_pk}
    if not users:
        return []
    email_off = set(EmailPreference.objects.filter(user_id__in=users, kind=kind, email=False).values_list("user_id", flat=True))
    now = timezone.now()
    actor_name = actor.get_username() if actor_pk else "system"
    notifications = Notification.objects.bulk_create(
        Notification(
            recipient_id=pk, kind=kind, model=model, title=title[:300], body=body, url=url, actor_name=actor_name, created_at=now,
            email_next_attempt_at=now, email_status=EmailStatus.PENDING if user.email and pk not in email_off else EmailStatus.OFF,
        )
        for pk, user in users.items()
    )
    pending = [n.pk for n in notifications if n.email_status == EmailStatus.PENDING]
    if pending:
        transaction.on_commit(lambda: _send_all(pending), robust=True)
    return notifications


def _send_all(notification_ids: list[int]) -> None:
    for notification_id in notification_ids:
        if not email_send(notification_id=notification_id):
            break  # the broker is down (or publishing is paused): the sweep sends these and the rest


def email_send(*, notification_id: int, due_at=None) -> bool:
    """Hand a notification's email to the broker, due at `due_at` (now by default): one bounded attempt that never
    raises (registry_site.broker.publish). False if the broker did not take it; the sweep sends it later."""
    from .tasks import send_notification_email

    return OUTBOX.publish(send_notification_email, Notification.objects, notification_id, due_at=due_at)


OUTBOX = Outbox(
    settings_prefix="NOTIFICATION_EMAIL",
    in_flight=EmailStatus.SENDING,
    failed=EmailStatus.FAILED,
    gave_up=EmailStatus.GAVE_UP,
    retryable=EMAIL_RETRYABLE,
    column_prefix="email_",
    error_column="email_error",
)


def email_sweep() -> dict:
    """Take back emails whose worker died mid-attempt (giving up on those out of attempts), and resend due ones the
    broker never got (or lost)."""
    return OUTBOX.sweep(Notification.objects.all(), send=lambda pk: email_send(notification_id=pk))


def email_message(notification: Notification) -> tuple[str, str]:
    """Subject and plain-text body of a notification's email."""
    site = settings.SITE_URL.rstrip("/")
    parts = [notification.title, notification.body.strip(), f"Open it: {site}{notification.url}"]
    footer = (
        f"You get this email because of your setting '{Kind(notification.kind).label}'. "
        f"Turn emails of this kind off at {site}/notifications/settings/."
    )
    return f"[Model Registry] {notification.title}"[:200], "\n\n".join(part for part in parts if part) + "\n\n-- \n" + footer + "\n"


def email_attempt(*, notification_id: int) -> Notification | None:
    """Send one notification's email on a worker and record the outcome. None if it was not ours to send."""
    now = timezone.now()
    stale = now - OUTBOX.lease()
    claimable = Q(email_status__in=EMAIL_RETRYABLE, email_next_attempt_at__lte=now) | Q(email_status=EmailStatus.SENDING, email_claimed_at__lt=stale)
    claimed = Notification.objects.filter(claimable, pk=notification_id).update(
        email_status=EmailStatus.SENDING, email_claimed_at=now, email_attempts=F("email_attempts") + 1
    )
    if not claimed:
        return None
    notification = Notification.objects.select_related("recipient").get(pk=notification_id)
    subject, text = email_message(notification)
    error = ""
    try:
        send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, [notification.recipient.email], fail_silently=False)
    except Exception as exc:  # any backend's failure (SMTP refused, timeout, bad address) is recorded and retried
        error = f"{type(exc).__name__}: {exc}"[:500] or "The email backend failed."
    return _email_record(notification_id, now, error)


@transaction.atomic
def _email_record(notification_id: int, claimed_at, error: str) -> Notification | None:
    notification = Notification.objects.select_for_update().filter(pk=notification_id).first()
    if notification is None or notification.email_status != EmailStatus.SENDING or notification.email_claimed_at != claimed_at:
        return notification  # our lease ran out and another worker took it over
    now = timezone.now()
    notification.email_claimed_at, notification.email_error = None, error
    if not error:
        notification.email_status, notification.email_sent_at = EmailStatus.SENT, now
    elif OUTBOX.gives_up(notification.email_attempts):
        notification.email_status = EmailStatus.GAVE_UP
    else:
        notification.email_status = EmailStatus.FAILED
        notification.email_next_attempt_at = now + OUTBOX.delay(notification.email_attempts)
    notification.save(update_fields=["email_status", "email_claimed_at", "email_error", "email_sent_at", "email_next_attempt_at"])
    return notification


def notification_mark_read(*, user, notification_ids: Iterable[int] | None = None) -> int:
    """Mark the user's own unread notifications read: the ones named, or all. Returns how many changed."""
    unread = Notification.objects.filter(recipient=user, read_at__isnull=True)
    if notification_ids is not None:
        unread = unread.filter(pk__in=list(notification_ids))
    return unread.update(read_at=timezone.now())


@transaction.atomic
def email_preferences_update(*, user, email_kinds: Iterable[str]) -> None:
    """Email the user for exactly these kinds (the page's ticked boxes); every other kind stays on the page only."""
    wanted = set(email_kinds)
    unknown = wanted - set(Kind.values)
    if unknown:
        raise ValueError(f"Unknown notification kinds: {', '.join(sorted(unknown))}.")
    for kind in Kind.values:
        EmailPreference.objects.update_or_create(user=user, kind=kind, defaults={"email": kind in wanted})
