"""Notifications: one row per recipient and event, written in the transaction of the event it tells about.

The row is also the email's outbox (like a webhook `Delivery`): it exists before any message reaches the broker, a
worker claims it with one conditional UPDATE and sends the email, and the beat sweep resends what the broker never got.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.models.models import RegisteredModel


class Kind(models.TextChoices):
    REVIEW_REQUESTED = "review_requested", "A transition request waits for my review"
    REQUEST_APPROVED = "request_approved", "My request was approved"
    REQUEST_REJECTED = "request_rejected", "My request was rejected"
    REQUEST_WITHDRAWN = "request_withdrawn", "A request I could review was withdrawn"
    REQUEST_STALE = "request_stale", "Approvals on my request went stale"
    VALIDATION_FAILED = "validation_failed", "Validation failed on a model I manage"
    ROLLED_BACK = "production_rolled_back", "Production or an alias was rolled back on a model I manage"  # the value predates aliases
    MENTIONED = "mentioned", "Someone mentioned me in a comment"


class EmailStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed, will be retried"
    GAVE_UP = "gave_up", "Gave up"
    OFF = "off", "Not sent (email off for this kind, or no address)"


EMAIL_RETRYABLE = (EmailStatus.PENDING, EmailStatus.FAILED)


class Notification(models.Model):
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="+")
    title = models.CharField(max_length=300)
    body = models.TextField(blank=True, help_text="Plain text; shown escaped.")
    url = models.CharField(max_length=500, help_text="Path of the page it is about.")
    actor_name = models.CharField(max_length=150, blank=True, help_text="Copied so the record survives the user's deletion.")
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)
    email_status = models.CharField(max_length=16, choices=EmailStatus.choices, default=EmailStatus.PENDING)
    email_attempts = models.PositiveSmallIntegerField(default=0)
    email_next_attempt_at = models.DateTimeField(default=timezone.now)
    email_message_due_at = models.DateTimeField(null=True, blank=True, help_text="When the last message handed to the broker became due.")
    email_claimed_at = models.DateTimeField(null=True, blank=True)
    email_sent_at = models.DateTimeField(null=True, blank=True)
    email_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["recipient", "-created_at"]),
            models.Index(fields=["recipient"], condition=models.Q(read_at__isnull=True), name="notification_unread"),
            models.Index(fields=["email_status", "email_next_attempt_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.recipient_id}: {self.title[:60]}"


class EmailPreference(models.Model):
    """A user's choice for one kind. No row: email on."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    email = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "kind"], name="one_email_preference_per_kind")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.kind}: {'on' if self.email else 'off'}"
