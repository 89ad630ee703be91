"""An alias move reaches webhooks as `alias.changed`, signed, once the move commits; a governed alias's event is
written only when its decisive approval applies it."""

import json

import pytest

from apps.approvals.services import alias_policy_update, alias_set, transition_request_approve, transition_request_create
from apps.events.models import Delivery, EventType
from apps.events.services import delivery_attempt, webhook_create
from tests.factories import register_version

from .conftest import SECRET
from .receiver import signature_is_valid

pytestmark = pytest.mark.django_db


def test_alias_moves_are_delivered_to_webhooks_that_want_them(model, owner, reviewer, receiver, allow_loopback):
    webhook, _ = webhook_create(model=model, actor=owner, url=receiver.url("/aliases"), secret=SECRET, event_types=[EventType.ALIAS_CHANGED])
    version = register_version(model, owner)
    alias_set(model=model, alias="canary", version=version, actor=owner, reason="try it")
    delivered = delivery_attempt(delivery_id=Delivery.objects.get(webhook=webhook).pk)
    assert delivered.status == "delivered"
    [request] = receiver.requests
    assert request.headers["X-Registry-Event"] == "alias.changed" and signature_is_valid(SECRET, request)
    assert json.loads(request.body)["data"] == {"alias": "canary", "old_version": None, "new_version": 1, "reason": "try it", "rollback": False}

    alias_policy_update(model=model, alias="champion", actor=owner, required_approvals=1)
    transition_request = transition_request_create(version=version, alias="champion", actor=owner, justification="best")
    assert Delivery.objects.filter(webhook=webhook).count() == 1  # nothing moved yet, nothing sent
    transition_request_approve(transition_request=transition_request, actor=reviewer)
    assert Delivery.objects.filter(webhook=webhook, event__payload__alias="champion").count() == 1
