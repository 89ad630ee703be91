"""Deployment events and webhook deliveries.

`event_emit` is called inside the transaction that changes a stage: the event and one delivery row per matching
webhook commit with the change or not at all (the delivery rows are the outbox). Once the transaction commits, a
Celery message is sent per delivery; if the broker is down then, `delivery_sweep` sends it later. A worker claims
a delivery with one conditional UPDATE, so duplicate messages do nothing, and a claim whose worker died is taken
over once its lease runs out.
"""

import hashlib
import hmac
import json
import secrets
import time

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.audit import services as audit
from apps.models.models import RegisteredModel
from apps.models.permissions import Action, require
from apps.web.outbox import Outbox

from . import safe_http
from .models import RETRYABLE, Delivery, DeliveryStatus, Event, EventType, Webhook

MAX_WEBHOOKS_PER_MODEL = 20
MIN_SECRET_LENGTH = 16


def _actor_name(actor) -> str:
    return actor.get_username() if getattr(actor, "pk", None) else "system"


@transaction.atomic
def event_emit(*, model: RegisteredModel, event_type: str, payload: dict, actor=None) -> Event:
    """Record an event in the caller's transaction, with a delivery for every active webhook that wants it.

    Messages to the workers are sent only once that transaction commits; nothing is sent if it rolls back.
    """
    if event_type not in EventType.values:
        raise ValueError(f"Unknown event type {event_type!r}; known types: {', '.join(EventType.values)}.")
    if not isinstance(payload, dict):
        raise TypeError("An event payload is a dict.")
    event = Event.objects.create(model=model, type=event_type, payload=payload, actor_name=_actor_name(actor))
    webhooks = [webhook for webhook in Webhook.objects.filter(model=model, active=True) if webhook.accepts(event_type)]
    deliveries = Delivery.objects.bulk_create(
        Delivery(event=event, webhook=webhook, next_attempt_at=event.created_at, created_at=event.created_at) for webhook in webhooks
    )
    _send_on_commit([delivery.pk for delivery in deliveries])
    return event


def _send_on_commit(delivery_ids: list[int]) -> None:
    def send() -> None:
        for delivery_id in delivery_ids:
            if not delivery_send(delivery_id=delivery_id):
                break  # the broker is down (or publishing is paused): the sweep sends these and the rest

    if delivery_ids:
        transaction.on_commit(send, robust=True)


def delivery_send(*, delivery_id: int, due_at=None) -> bool:
    """Hand a delivery to the broker, to run at `due_at` (now by default): one bounded attempt that never raises
    (registry_site.broker.publish). False if the broker did not take it; `delivery_sweep` sends it later."""
    from .tasks import deliver_webhook

    return OUTBOX.publish(deliver_webhook, Delivery.objects, delivery_id, due_at=due_at)


OUTBOX = Outbox(
    settings_prefix="WEBHOOK",
    in_flight=DeliveryStatus.DELIVERING,
    failed=DeliveryStatus.FAILED,
    gave_up=DeliveryStatus.GAVE_UP,
    retryable=RETRYABLE,
)


def delivery_sweep() -> dict:
    """Take back deliveries whose worker died mid-attempt, and resend due ones the broker never got (or lost)."""
    return OUTBOX.sweep(Delivery.objects.all(), send=lambda pk: delivery_send(delivery_id=pk), sendable=Q(webhook__active=True))


def _claim(delivery_id: int, now) -> bool:
    """Atomically take a due delivery, or one whose attempt's lease ran out. A finished delivery is never sent again.

    The webhook's state is a subquery, not a join, so the status test stays in the UPDATE's own WHERE clause
    and PostgreSQL re-checks it on the locked row when two workers race.
    """
    stale = now - OUTBOX.lease()
    claimable = Q(status__in=RETRYABLE, next_attempt_at__lte=now) | Q(status=DeliveryStatus.DELIVERING, claimed_at__lt=stale)
    active = Webhook.objects.filter(active=True).values("pk")
    return bool(
        Delivery.objects.filter(claimable, pk=delivery_id, webhook_id__in=active).update(
            status=DeliveryStatus.DELIVERING, claimed_at=now, last_attempt_at=now, attempts=F("attempts") + 1
        )
    )


def delivery_body(event: Event) -> bytes:
    envelope = {"id": str(event.id), "type": event.type, "created_at": event.created_at.isoformat(), "model": event.model.name, "data": event.payload}
    return json.dumps(envelope, cls=DjangoJSONEncoder, separators=(",", ":"), sort_keys=True).encode()


def signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=` + hex HMAC-SHA256 keyed with the webhook's secret over `<timestamp>.<body>`."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def delivery_request(delivery: Delivery) -> tuple[bytes, dict[str, str]]:
    body = delivery_body(delivery.event)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "model-registry-webhooks/1",
        "X-Registry-Event": delivery.event.type,
        "X-Registry-Event-Id": str(delivery.event_id),
        "X-Registry-Delivery": str(delivery.pk),
        "X-Registry-Timestamp": timestamp,
        "X-Registry-Signature": signature(secret=delivery.webhook.secret, timestamp=timestamp, body=body),
    }
    return body, headers


def delivery_attempt(*, delivery_id: int) -> Delivery | None:
    """Make one attempt at a delivery on a worker and record its outcome. Returns None if it was not ours to make."""
    claimed_at = timezone.now()
    if not _claim(delivery_id, claimed_at):
        return None
    delivery = Delivery.objects.select_related("event__model", "webhook").filter(pk=delivery_id).first()
    if delivery is None:
        return None  # the webhook was deleted meanwhile
    body, headers = delivery_request(delivery)
    started = time.monotonic()
    status_code, excerpt, error, final = None, "", "", False
    try:
        answer = safe_http.post(delivery.webhook.url, body=body, headers=headers)
    except safe_http.RefusedDestination as exc:
        error, final = f"Refused, not sent: {exc}", True
    except safe_http.DeliveryFailed as exc:
        error = str(exc)
    else:
        status_code, excerpt = answer.status, answer.excerpt
        if 300 <= answer.status < 400:
            error = f"The receiver answered {answer.status}, a redirect; redirects are not followed."
        elif not 200 <= answer.status < 300:
            error = f"The receiver answered {answer.status}."
    duration_ms = int((time.monotonic() - started) * 1000)
    return _record(delivery_id, claimed_at, status_code=status_code, excerpt=excerpt, error=error, final=final, duration_ms=duration_ms)


@transaction.atomic
def _record(delivery_id: int, claimed_at, *, status_code, excerpt: str, error: str, final: bool, duration_ms: int) -> Delivery:
    delivery = Delivery.objects.select_for_update().filter(pk=delivery_id).first()
    if delivery is None or delivery.status != DeliveryStatus.DELIVERING or delivery.claimed_at != claimed_at:
        return delivery  # deleted with its webhook, or our lease ran out and another worker took the delivery over
    now = timezone.now()
    delivery.last_status_code, delivery.response_excerpt, delivery.last_error = status_code, excerpt, error[:500]
    delivery.last_duration_ms, delivery.claimed_at = duration_ms, None
    if not error:
        delivery.status, delivery.delivered_at = DeliveryStatus.DELIVERED, now
    elif final or OUTBOX.gives_up(delivery.attempts):
        delivery.status = DeliveryStatus.GAVE_UP
    else:
        delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, now + OUTBOX.delay(delivery.attempts)
    delivery.save()
    return delivery


def _snapshot(webhook: Webhook) -> dict:
    return {"url": webhook.url, "event_types": webhook.event_types, "active": webhook.active}


def _checked_url(url: str) -> str:
    url = url.strip()
    try:
        safe_http.check_destination(url)
    except (safe_http.RefusedDestination, safe_http.DeliveryFailed) as exc:
        raise ValidationError({"url": [str(exc)]}) from exc
    return url


@transaction.atomic
def webhook_create(
    *, model: RegisteredModel, actor, url: str, secret: str = "", event_types: list[str] | None = None, active: bool = True
) -> tuple[Webhook, str | None]:
    """Register a receiver. Returns the webhook and the secret generated for it (None when one was given), to show once."""
    require(actor, Action.MANAGE, model)
    event_types = sorted(set(event_types or []))
    unknown = [t for t in event_types if t not in EventType.values]
    if unknown:
        raise ValidationError({"event_types": [f"Unknown event type: {', '.join(unknown)}."]})
    if secret and len(secret) < MIN_SECRET_LENGTH:
        raise ValidationError({"secret": [f"Use at least {MIN_SECRET_LENGTH} characters, or leave it empty to have one generated."]})
    if Webhook.objects.filter(model=model).count() >= MAX_WEBHOOKS_PER_MODEL:
        raise ValidationError(f"A model may have at most {MAX_WEBHOOKS_PER_MODEL} webhooks; delete one first.")
    url = _checked_url(url)
    generated = None if secret else "whsec_" + secrets.token_urlsafe(32)
    webhook = Webhook.objects.create(model=model, url=url, secret=secret or generated, event_types=event_types, active=active, created_by=actor)
    audit.record(actor=actor, obj=webhook, action="webhook.created", after=_snapshot(webhook), registered_model_id=model.pk)
    return webhook, generated


@transaction.atomic
def webhook_set_active(*, webhook: Webhook, actor, active: bool) -> Webhook:
    """Pause or resume a webhook. A paused one gets no new deliveries; its pending ones wait until it is resumed."""
    require(actor, Action.MANAGE, webhook.model)
    before = _snapshot(webhook)
    webhook.active = active
    webhook.save(update_fields=["active"])
    action = "webhook.activated" if active else "webhook.deactivated"
    audit.record(actor=actor, obj=webhook, action=action, before=before, after=_snapshot(webhook), registered_model_id=webhook.model_id)
    return webhook


@transaction.atomic
def webhook_delete(*, webhook: Webhook, actor) -> None:
    """Delete a webhook with its delivery log; the audit trail keeps what it was."""
    require(actor, Action.MANAGE, webhook.model)
    audit.record(actor=actor, obj=webhook, action="webhook.deleted", before=_snapshot(webhook), registered_model_id=webhook.model_id)
    webhook.delete()


@transaction.atomic
def delivery_redeliver(*, delivery: Delivery, actor) -> Delivery:
    """Send a delivery's event to its webhook again, as a new delivery with the same event id."""
    webhook = delivery.webhook
    require(actor, Action.MANAGE, webhook.model)
    if not webhook.active:
        raise ValidationError("This webhook is paused; activate it before redelivering.")
    fresh = Delivery.objects.create(event_id=delivery.event_id, webhook=webhook, redelivery_of=delivery)
    audit.record(
        actor=actor, obj=webhook, action="webhook.redelivered", registered_model_id=webhook.model_id,
        after={"event": str(delivery.event_id), "delivery": fresh.pk, "redelivery_of": delivery.pk},
    )
    _send_on_commit([fresh.pk])
    return fresh
