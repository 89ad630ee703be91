"""Webhook deliveries on real Celery workers over Redis: retries with backoff, and nothing lost while the broker is down."""

import json
import shutil

import pytest
from django.conf import settings

from apps.events.models import Delivery, DeliveryStatus, EventType
from apps.events.services import delivery_sweep, event_emit
from tests.validation.workers import RedisServer, Worker, producing_to, wait_for

from .conftest import SECRET
from .receiver import Reply, signature_is_valid

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]
REDIS = settings.CELERY_BROKER_URL
WORKER_ENV = {"WEBHOOK_ALLOWED_INTERNAL_HOSTS": "127.0.0.1", "WEBHOOK_RETRY_BASE_SECONDS": 1}
ROLLBACK = {"from_version": 3, "to_version": 2, "reason": "error rate doubled after v3"}


def _status(delivery_id):
    return Delivery.objects.get(pk=delivery_id).status


def test_a_worker_retries_a_failing_receiver_with_backoff_until_it_accepts(model, owner, webhook, receiver):
    receiver.replies.append(Reply(500, b"deployer busy"))
    worker = Worker(REDIS, **WORKER_ENV).start()
    try:
        event = event_emit(model=model, event_type=EventType.PRODUCTION_ROLLED_BACK, payload=ROLLBACK, actor=owner)
        delivery = event.deliveries.get()
        wait_for(lambda: _status(delivery.pk) in (DeliveryStatus.DELIVERED, DeliveryStatus.GAVE_UP), timeout=30)
    finally:
        log = worker.stop()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 2 and delivery.last_status_code == 200, log[-3000:]
    first, second = receiver.requests
    assert second.at - first.at >= 0.9  # the backoff (1 s base in this worker) was waited out
    assert all(signature_is_valid(SECRET, r) for r in (first, second))
    assert {r.headers["X-Registry-Event-Id"] for r in (first, second)} == {str(event.id)}


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed, so the test cannot stop and restart a broker")
def test_nothing_is_lost_while_the_broker_is_down(model, owner, webhook, receiver):
    broker = RedisServer().start()
    worker = None
    try:
        with producing_to(broker.url):
            broker.stop()
            event = event_emit(model=model, event_type=EventType.PRODUCTION_ROLLED_BACK, payload=ROLLBACK, actor=owner)
            delivery = event.deliveries.get()
            assert delivery.status == DeliveryStatus.PENDING and delivery.message_due_at is None
            broker.start()
            worker = Worker(broker.url, **WORKER_ENV).start()
            assert delivery_sweep()["sent"] == 1
            wait_for(lambda: _status(delivery.pk) == DeliveryStatus.DELIVERED, timeout=30)
    finally:
        log = worker.stop() if worker else ""
        broker.stop()
    delivery.refresh_from_db()
    assert delivery.attempts == 1, log[-3000:]
    (request,) = receiver.requests
    assert signature_is_valid(SECRET, request) and request.headers["X-Registry-Event-Id"] == str(event.id)
    assert json.loads(request.body)["data"] == ROLLBACK and request.headers["X-Registry-Event"] == "production.rolled_back"
