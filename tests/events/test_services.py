"""Events, the outbox and one delivery attempt at a time, against a real HTTP receiver on loopback."""

import json
import logging
import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.events.models import Delivery, DeliveryStatus, Event, EventType
from apps.events.services import delivery_attempt, delivery_redeliver, delivery_sweep, OUTBOX, event_emit, webhook_create, webhook_set_active
from tests.validation.workers import free_port, producing_to

from .conftest import SECRET
from .receiver import Reply, signature_is_valid

pytestmark = pytest.mark.django_db

ROLLBACK = {"from_version": 3, "to_version": 2, "reason": "v3 raised the error rate"}


def _due_now(delivery: Delivery) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_a_rollback_event_reaches_the_receiver_signed_with_the_webhook_secret(model, owner, webhook, receiver):
    event = event_emit(model=model, event_type=EventType.PRODUCTION_ROLLED_BACK, payload=ROLLBACK, actor=owner)
    delivery = event.deliveries.get()

    done = delivery_attempt(delivery_id=delivery.pk)

    assert done.status == DeliveryStatus.DELIVERED and done.attempts == 1 and done.last_status_code == 200
    (request,) = receiver.requests
    assert request.method == "POST" and request.path == "/hook"
    assert signature_is_valid(SECRET, request)
    assert not signature_is_valid("another-secret-0123456789", request)
    assert request.headers["X-Registry-Event-Id"] == str(event.id)
    assert request.headers["X-Registry-Event"] == "production.rolled_back"
    assert request.headers["X-Registry-Delivery"] == str(delivery.pk)
    assert request.headers["Content-Type"] == "application/json"
    assert abs(int(request.headers["X-Registry-Timestamp"]) - time.time()) < 60
    assert json.loads(request.body) == {
        "id": str(event.id), "type": "production.rolled_back", "created_at": event.created_at.isoformat(), "model": "sentiment", "data": ROLLBACK,
    }


def test_the_event_and_its_deliveries_roll_back_with_the_change_they_describe(model, owner, webhook):
    with pytest.raises(RuntimeError), transaction.atomic():
        event_emit(model=model, event_type=EventType.PRODUCTION_CHANGED, payload={"from_version": 1, "to_version": 2}, actor=owner)
        raise RuntimeError("the stage change failed after the event was written")
    assert not Event.objects.exists() and not Delivery.objects.exists()


def test_messages_are_sent_only_after_the_commit(model, owner, webhook, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        event_emit(model=model, event_type=EventType.VERSION_STAGE_CHANGED, payload={"version": 1, "from_stage": "draft", "to_stage": "staging"})
    assert len(callbacks) == 1
    assert Event.objects.get().actor_name == "system"


def test_only_active_webhooks_whose_filter_matches_get_a_delivery(model, owner, receiver, allow_loopback):
    everything, _ = webhook_create(model=model, actor=owner, url=receiver.url("/all"))
    rollbacks, _ = webhook_create(model=model, actor=owner, url=receiver.url("/rollbacks"), event_types=[EventType.PRODUCTION_ROLLED_BACK])
    paused, _ = webhook_create(model=model, actor=owner, url=receiver.url("/paused"), active=False)

    stage = event_emit(model=model, event_type=EventType.VERSION_STAGE_CHANGED, payload={}, actor=owner)
    rollback = event_emit(model=model, event_type=EventType.PRODUCTION_ROLLED_BACK, payload=ROLLBACK, actor=owner)

    assert {d.webhook_id for d in stage.deliveries.all()} == {everything.pk}
    assert {d.webhook_id for d in rollback.deliveries.all()} == {everything.pk, rollbacks.pk}
    assert not paused.deliveries.exists()


def test_an_unknown_event_type_is_refused(model):
    with pytest.raises(ValueError, match="production.rolled_back"):
        event_emit(model=model, event_type="production.exploded", payload={})


def test_a_failed_attempt_is_retried_after_its_backoff_and_then_delivered(model, webhook, receiver):
    receiver.replies.append(Reply(500, b"upstream deploy service unavailable"))
    delivery = event_emit(model=model, event_type=EventType.PRODUCTION_CHANGED, payload={"to_version": 2}).deliveries.get()

    first = delivery_attempt(delivery_id=delivery.pk)
    assert first.status == DeliveryStatus.FAILED and first.last_status_code == 500
    assert first.response_excerpt == "upstream deploy service unavailable" and "answered 500" in first.last_error
    assert timedelta(seconds=9) < first.next_attempt_at - timezone.now() <= timedelta(seconds=10)
    assert delivery_attempt(delivery_id=delivery.pk) is None  # not due yet: nothing is sent

    _due_now(delivery)
    second = delivery_attempt(delivery_id=delivery.pk)

    assert second.status == DeliveryStatus.DELIVERED and second.attempts == 2 and second.last_error == ""
    assert len(receiver.requests) == 2
    assert {r.headers["X-Registry-Event-Id"] for r in receiver.requests} == {str(delivery.event_id)}
    assert all(signature_is_valid(SECRET, r) for r in receiver.requests)


def test_a_delivery_gives_up_after_the_last_attempt(model, webhook, receiver, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    receiver.default = Reply(503, b"")
    delivery = event_emit(model=model, event_type=EventType.PRODUCTION_CHANGED, payload={}).deliveries.get()
    for _ in range(3):
        _due_now(delivery)
        outcome = delivery_attempt(delivery_id=delivery.pk)
    assert outcome.status == DeliveryStatus.GAVE_UP and outcome.attempts == 3
    _due_now(delivery)
    assert delivery_attempt(delivery_id=delivery.pk) is None
    assert len(receiver.requests) == 3


def test_the_backoff_doubles_from_the_base_and_is_capped(settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS, settings.WEBHOOK_RETRY_MAX_SECONDS = 10, 300
    assert [OUTBOX.delay(n).total_seconds() for n in range(1, 8)] == [10, 20, 40, 80, 160, 300, 300]
    assert OUTBOX.delay(10_000).total_seconds() == 300


def test_a_redirect_is_not_followed_and_counts_as_a_failure(model, webhook, receiver):
    receiver.replies.append(Reply(302, b"", {"Location": receiver.url("/elsewhere")}))
    delivery = event_emit(model=model, event_type=EventType.PRODUCTION_CHANGED, payload={}).deliveries.get()

    outcome = delivery_attempt(delivery_id=delivery.pk)

    assert outcome.status == DeliveryStatus.FAILED and outcome.last_status_code == 302
    assert "redirect" in outcome.last_error and "not followed" in outcome.last_error
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_only_a_short_printable_excerpt_of_the_answer_is_kept(model, webhook, receiver):
    receiver.replies.append(Reply(500, b"\x00secret internal stack trace\n" + b"X" * 5000))
    delivery = event_emit(model=model, event_type=EventType.PRODUCTION_CHANGED, payload={}).deliveries.get()

    outcome = delivery_attempt(delivery_id=delivery.pk)

    assert len(outcome.response_excerpt) == 200
    assert outcome.response_excerpt.startswith("secret internal stack trace XXX")


def test_an_unreachable_receiver_is_retried(model, owner, allow_loopback):
    closed = free_port()
    webhook_create(model=model, actor=owner, url=f"http://127.0.0.1:{closed}/hook")
    delivery = event_emit(model=model, event_type=EventType.PRODUCTION_CHANGED, payload={}).deliveries.get()

    outcome = delivery_attempt(delivery_id=delivery.pk)

    assert outcome.status == DeliveryStatus.FAILED and outcome.last_status_code is None
    assert "connection refused" in outcome.last_error


def test_a_receiver_that_does_not_answer_in_time_is_retried(model, webhook, receiver, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.3
    receiver.replies.append(Reply(200, b"too late", delay=1.5))
    delivery = event_emit(model=model, event_type=EventType.PRODUCTION_CHANGED, payload={}).deliveries.get()

    outcome = delivery_attempt(delivery_id=delivery.pk)

    assert outcome.status == DeliveryStatus.FAILED and "timed out" in outcome.last_error


def test_a_duplicate_message_for_a_finished_delivery_sends_nothing(model, webhook, receiver):
    delivery = event_emit(model=model, event_type=EventType.PRODUCTION_CHANGED, payload={}).deliveries.get()
    assert delivery_attempt(delivery_id=delivery.pk).status == DeliveryStatus.DELIVERED
    assert delivery_attempt(delivery_id=delivery.pk) is None
    assert len(receiver.requests) == 1


def test_redelivery_sends_the_same_event_id_as_a_new_delivery(model, owner, webhook, receiver):
    event = event_emit(model=model, event_type=EventType.PRODUCTION_ROLLED_BACK, payload=ROLLBACK)
    first = delivery_attempt(delivery_id=event.deliveries.get().pk)

    again = delivery_redeliver(delivery=first, actor=owner)
    delivery_attempt(delivery_id=again.pk)

    again.refresh_from_db()
    assert again.pk != first.pk and again.redelivery_of_id == first.pk and again.status == DeliveryStatus.DELIVERED
    assert [r.headers["X-Registry-Event-Id"] for r in receiver.requests] == [str(event.id)] * 2
    assert [r.headers["X-Registry-Delivery"] for r in receiver.requests] == [str(first.pk), str(again.pk)]
    entry = AuditEntry.objects.get(action="webhook.redelivered")
    assert entry.after == {"event": str(event.id), "delivery": again.pk, "redelivery_of": first.pk} and entry.registered_model_id == model.pk


def test_a_paused_webhook_gets_no_new_deliveries_and_its_pending_ones_wait(model, owner, webhook, receiver):
    pending = event_emit(model=model, event_type=EventType.PRODUCTION_CHANGED, payload={}).deliveries.get()
    webhook_set_active(webhook=webhook, actor=owner, active=False)

    assert delivery_attempt(delivery_id=pending.pk) is None
    assert not event_emit(model=model, event_type=EventType.PRODUCTION_CHANGED, payload={}).deliveries.exists()

    webhook_set_active(webhook=webhook, actor=owner, active=True)
    assert delivery_attempt(delivery_id=pending.pk).status == DeliveryStatus.DELIVERED
    assert list(AuditEntry.objects.filter(action__startswith="webhook.").order_by("id").values_list("action", flat=True)) == [
        "webhook.created", "webhook.deactivated", "webhook.activated",
    ]


def test_a_broker_outage_at_commit_leaves_the_delivery_pending_for_the_sweep(model, webhook, django_capture_on_commit_callbacks, caplog):
    with producing_to(f"redis://127.0.0.1:{free_port()}/0"), caplog.at_level(logging.WARNING, logger="registry_site.broker"):
        with django_capture_on_commit_callbacks(execute=True):
            event = event_emit(model=model, event_type=EventType.PRODUCTION_ROLLED_BACK, payload=ROLLBACK)
        delivery = event.deliveries.get()
        assert delivery.status == DeliveryStatus.PENDING and delivery.message_due_at is None
        assert "the sweep will resend it" in caplog.text


def test_the_sweep_takes_back_an_attempt_whose_worker_died(model, webhook, receiver, settings):
    settings.WEBHOOK_LEASE_SECONDS = 60
    delivery = event_emit(model=model, event_type=EventType.PRODUCTION_CHANGED, payload={}).deliveries.get()
    Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.DELIVERING, attempts=1, claimed_at=timezone.now() - timedelta(seconds=61))

    with producing_to("memory://localhost/"):
        assert delivery_sweep() == {"reclaimed": 1, "sent": 1}
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and "worker stopped" in delivery.last_error

    done = delivery_attempt(delivery_id=delivery.pk)
    assert done.status == DeliveryStatus.DELIVERED and done.attempts == 2


def test_a_message_for_an_attempt_in_flight_waits_for_its_lease_then_takes_over(model, webhook, receiver, settings):
    settings.WEBHOOK_LEASE_SECONDS = 60
    delivery = event_emit(model=model, event_type=EventType.PRODUCTION_CHANGED, payload={}).deliveries.get()
    in_flight = Delivery.objects.filter(pk=delivery.pk)
    in_flight.update(status=DeliveryStatus.DELIVERING, attempts=1, claimed_at=timezone.now() - timedelta(seconds=30))
    assert delivery_attempt(delivery_id=delivery.pk) is None

    in_flight.update(claimed_at=timezone.now() - timedelta(seconds=61))
    done = delivery_attempt(delivery_id=delivery.pk)
    assert done.status == DeliveryStatus.DELIVERED and done.attempts == 2 and len(receiver.requests) == 1
