"""Webhook fixtures: a loopback receiver, the setting that lets webhooks reach it, and a webhook pointing at it."""

import pytest

from apps.events.services import webhook_create

from .receiver import Receiver

SECRET = "test-secret-0123456789abcdef"


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def allow_loopback(settings):
    settings.WEBHOOK_ALLOWED_INTERNAL_HOSTS = ["127.0.0.1"]
    return settings


@pytest.fixture
def webhook(model, owner, receiver, allow_loopback):
    created, _ = webhook_create(model=model, actor=owner, url=receiver.url(), secret=SECRET)
    return created
