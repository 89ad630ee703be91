"""Rollback triggers redeployment automatically: the API call alone gets a signed event to the deployer."""

import json

import pytest

from apps.events.models import Delivery, DeliveryStatus, EventType
from apps.events.services import webhook_create
from tests.events.conftest import SECRET
from tests.events.receiver import Receiver, signature_is_valid
from tests.factories import promote, register_version
from tests.validation.workers import Worker, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_a_rollback_through_the_api_reaches_the_deployer_signed(api_for, owner, reviewer, model, settings):
    settings.WEBHOOK_ALLOWED_INTERNAL_HOSTS = ["127.0.0.1"]
    receiver = Receiver().start()
    webhook_create(model=model, actor=owner, url=receiver.url(), secret=SECRET, event_types=[EventType.PRODUCTION_ROLLED_BACK])
    first, second = register_version(model, owner), register_version(model, owner)
    promote(first, requester=owner, approver=reviewer)
    promote(second, requester=owner, approver=reviewer)
    assert not Delivery.objects.exists(), "the webhook listens to rollbacks only"
    worker = Worker(settings.CELERY_BROKER_URL, WEBHOOK_ALLOWED_INTERNAL_HOSTS="127.0.0.1").start()
    try:
        response = api_for(reviewer).post(f"/api/v1/models/{model.name}/rollback/", {"reason": "error rate doubled"}, format="json")
        assert response.status_code == 201
        wait_for(lambda: Delivery.objects.filter(status=DeliveryStatus.DELIVERED).exists(), timeout=60)
    finally:
        log = worker.stop()
        receiver.stop()
    (request,) = receiver.requests
    assert signature_is_valid(SECRET, request), log[-2000:]
    body = json.loads(request.body)
    assert body["type"] == "production.rolled_back" and body["model"] == model.name
    assert body["data"] == {"old_version": 2, "new_version": 1, "reason": "error rate doubled"}
