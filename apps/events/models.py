"""Deployment events and the webhooks that receive them.

An `Event` is written in the same transaction as the stage change it describes; each matching webhook gets a
`Delivery` row in that transaction too. The delivery row is the outbox: it exists before any message reaches
the broker, and the sweep resends what the broker never got.
"""

import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from apps.models.models import RegisteredModel


class EventType(models.TextChoices):
    VERSION_STAGE_CHANGED = "version.stage_changed", "A version changed stage"
    PRODUCTION_CHANGED = "production.changed", "The production version changed"
    PRODUCTION_ROLLED_BACK = "production.rolled_back", "Production was rolled back"
    ALIAS_CHANGED = "alias.changed", "An alias moved, was set, rolled back or deleted"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERING = "delivering", "Delivering"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"  # and will be retried at next_attempt_at
    GAVE_UP = "gave_up", "Gave up"


RETRYABLE = (DeliveryStatus.PENDING, DeliveryStatus.FAILED)


class Event(models.Model):
    """Something that happened to a model. Its id is the idempotency key receivers see in every delivery of it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=64, choices=EventType.choices)
    payload = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    actor_name = models.CharField(max_length=150, blank=True, help_text="Copied so the record survives the user's deletion.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["model", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.type} on {self.model_id} ({self.id})"


class Webhook(models.Model):
    """A receiver a manager registered for one model. An empty event filter means every event type."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=2000)
    secret = models.CharField(max_length=200, help_text="Signs every delivery (HMAC-SHA256); never shown after creation.")
    event_types = models.JSONField(default=list, blank=True, help_text="Event types to send; empty: all.")
    active = models.BooleanField(default=True, help_text="An inactive webhook gets no new deliveries and its pending ones wait.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"webhook {self.pk} of {self.model_id} → {self.url[:80]}"

    def accepts(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


class Delivery(models.Model):
    """One event sent to one webhook: its attempts, the last outcome and when to try again."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    redelivery_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now, help_text="A pending or failed delivery is not attempted before this.")
    message_due_at = models.DateTimeField(
        null=True, blank=True, help_text="When the last message handed to the broker becomes due; the sweep resends if that was long ago."
    )
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="Start of the attempt in flight; a stale claim is taken over.")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    response_excerpt = models.CharField(max_length=200, blank=True, help_text="The start of the receiver's answer, never more.")
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["webhook", "-created_at"]),
            models.Index(fields=["status", "next_attempt_at"]),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} of {self.event_id} ({self.status})"
