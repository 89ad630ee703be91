"""The webhook pages: managers only (viewers 403, outsiders 404), secrets shown once, a delivery log with redelivery."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEntry
from apps.events.models import Delivery, DeliveryStatus, EventType, Webhook
from apps.events.services import delivery_attempt, event_emit, webhook_create

from .conftest import SECRET
from .receiver import Reply

pytestmark = pytest.mark.django_db


def _urls(model, webhook, delivery=None) -> dict[str, list[str]]:
    base = f"/models/{model.name}/webhooks/"
    posts = [base, f"{base}{webhook.pk}/active/", f"{base}{webhook.pk}/delete/"]
    if delivery is not None:
        posts.append(f"{base}{webhook.pk}/deliveries/{delivery.pk}/redeliver/")
    return {"get": [base, f"{base}{webhook.pk}/"], "post": posts}


def _queries_for(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_a_manager_creates_a_webhook_and_sees_its_generated_secret_once(web_for, owner, model, receiver, allow_loopback):
    client = web_for(owner)
    response = client.post(f"/models/{model.name}/webhooks/", {"url": receiver.url(), "event_types": ["production.rolled_back"], "active": "on"})

    assert response.status_code == 200
    webhook = Webhook.objects.get()
    assert webhook.secret.startswith("whsec_") and len(webhook.secret) > 40
    assert webhook.event_types == ["production.rolled_back"] and webhook.active and webhook.created_by == owner
    page = response.content.decode()
    assert f'<code id="new-secret">{webhook.secret}</code>' in page and "will not be shown again" in page
    assert webhook.secret not in client.get(f"/models/{model.name}/webhooks/").content.decode()
    entry = AuditEntry.objects.get(action="webhook.created")
    assert entry.after == {"url": receiver.url(), "event_types": ["production.rolled_back"], "active": True}
    assert entry.registered_model_id == model.pk and webhook.secret not in str(entry.after)


def test_a_secret_the_manager_chose_is_kept_and_never_shown(web_for, owner, model, receiver, allow_loopback):
    response = web_for(owner).post(f"/models/{model.name}/webhooks/", {"url": receiver.url(), "secret": SECRET, "active": "on"})
    assert response.status_code == 302
    assert Webhook.objects.get().secret == SECRET
    assert SECRET not in web_for(owner).get(response["Location"]).content.decode()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:8000/hook", "127.0.0.1 is a loopback address"),
        ("http://localhost/hook", "localhost resolves to 127.0.0.1, a loopback address"),
        ("http://10.0.0.1/hook", "10.0.0.1 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is the cloud metadata address"),
        ("http://[::1]/hook", "::1 is a loopback address"),
        ("ftp://example.com/", "Only http:// and https:// URLs are allowed."),
        ("https://ci:token@example.com/", "Credentials in the URL are not allowed"),
    ],
)
def test_the_form_refuses_internal_and_malformed_urls_with_a_clear_error(web_for, owner, model, url, message):
    response = web_for(owner).post(f"/models/{model.name}/webhooks/", {"url": url, "active": "on"})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Webhook.objects.exists()


def test_a_short_secret_is_refused(web_for, owner, model, receiver, allow_loopback):
    response = web_for(owner).post(f"/models/{model.name}/webhooks/", {"url": receiver.url(), "secret": "short"})
    assert response.status_code == 400 and "at least 16 characters" in response.content.decode()


def test_the_list_shows_each_webhook_and_documents_the_signature(web_for, owner, model, webhook):
    page = web_for(owner).get(f"/models/{model.name}/webhooks/").content.decode()
    assert webhook.url in page and f"/models/{model.name}/webhooks/{webhook.pk}/" in page and ">all<" in page
    assert "X-Registry-Signature" in page and "HMAC-SHA256" in page and "&lt;X-Registry-Timestamp&gt;.&lt;raw body&gt;" in page
    assert SECRET not in page


def test_the_delivery_log_shows_status_code_event_id_and_at_most_200_characters_of_the_answer(web_for, owner, model, webhook, receiver):
    receiver.replies.append(Reply(500, b"<html>" + b"X" * 5000))
    event = event_emit(model=model, event_type=EventType.PRODUCTION_ROLLED_BACK, payload={"to_version": 1})
    delivery_attempt(delivery_id=event.deliveries.get().pk)

    page = web_for(owner).get(f"/models/{model.name}/webhooks/{webhook.pk}/").content.decode()

    assert str(event.id) in page and "production.rolled_back" in page and 'data-status="failed"' in page
    assert "The receiver answered 500." in page and ">500<" in page
    assert "&lt;html&gt;" + "X" * 194 in page and "X" * 195 not in page
    assert "<html>X" not in page


def test_the_delivery_log_lists_newest_first_and_pages(web_for, owner, model, webhook):
    for index in range(30):
        event_emit(model=model, event_type=EventType.VERSION_STAGE_CHANGED, payload={"version": index})
    client = web_for(owner)
    first = client.get(f"/models/{model.name}/webhooks/{webhook.pk}/").content.decode()
    ids = [int(n) for n in re.findall(r'<td class="num">(\d+)</td>\s*<td>version', first)]
    assert len(ids) == 25 and ids == sorted(ids, reverse=True) and max(ids) == Delivery.objects.latest("id").pk
    assert "Page 1 of 2" in first
    assert "Page 2 of 2" in client.get(f"/models/{model.name}/webhooks/{webhook.pk}/?page=2").content.decode()


def test_the_delivery_log_query_count_does_not_grow_with_deliveries(web_for, owner, model, webhook):
    client = web_for(owner)
    for _ in range(3):
        event_emit(model=model, event_type=EventType.PRODUCTION_CHANGED, payload={})
    few = _queries_for(client, f"/models/{model.name}/webhooks/{webhook.pk}/")
    for _ in range(37):
        event_emit(model=model, event_type=EventType.PRODUCTION_CHANGED, payload={})
    assert Delivery.objects.count() == 40
    assert _queries_for(client, f"/models/{model.name}/webhooks/{webhook.pk}/") == few


def test_the_webhook_list_query_count_does_not_grow_with_webhooks(web_for, owner, model, receiver, allow_loopback):
    client = web_for(owner)
    webhook_create(model=model, actor=owner, url=receiver.url("/0"))
    few = _queries_for(client, f"/models/{model.name}/webhooks/")
    for index in range(1, 10):
        webhook_create(model=model, actor=owner, url=receiver.url(f"/{index}"), event_types=[EventType.PRODUCTION_CHANGED])
    event_emit(model=model, event_type=EventType.PRODUCTION_CHANGED, payload={})
    assert _queries_for(client, f"/models/{model.name}/webhooks/") == few


def test_redeliver_creates_a_new_delivery_of_the_same_event_and_sends_it_after_commit(
    web_for, owner, model, webhook, receiver, django_capture_on_commit_callbacks
):
    original = event_emit(model=model, event_type=EventType.PRODUCTION_ROLLED_BACK, payload={}).deliveries.get()
    delivery_attempt(delivery_id=original.pk)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = web_for(owner).post(f"/models/{model.name}/webhooks/{webhook.pk}/deliveries/{original.pk}/redeliver/")

    assert response.status_code == 302 and response["Location"] == f"/models/{model.name}/webhooks/{webhook.pk}/"
    again = Delivery.objects.exclude(pk=original.pk).get()
    assert again.event_id == original.event_id and again.redelivery_of_id == original.pk and again.status == DeliveryStatus.PENDING
    assert len(callbacks) == 1
    assert AuditEntry.objects.filter(action="webhook.redelivered", actor=owner).exists()
    page = web_for(owner).get(response["Location"]).content.decode()
    assert f"redelivery of #{original.pk}" in page and "queued for delivery again" in page


def test_a_manager_pauses_resumes_and_deletes_a_webhook(web_for, owner, model, webhook):
    client = web_for(owner)
    base = f"/models/{model.name}/webhooks/{webhook.pk}"
    assert client.post(f"{base}/active/", {"active": "0"}).status_code == 302
    webhook.refresh_from_db()
    assert not webhook.active and "Resume" in client.get(f"/models/{model.name}/webhooks/").content.decode()
    assert client.post(f"{base}/active/", {"active": "1"}).status_code == 302
    webhook.refresh_from_db()
    assert webhook.active

    assert client.post(f"{base}/delete/").status_code == 302
    assert not Webhook.objects.exists()
    deleted = AuditEntry.objects.get(action="webhook.deleted")
    assert deleted.before["url"] == webhook.url and deleted.object_id == str(webhook.pk)
    assert client.get(f"{base}/").status_code == 404


def test_a_viewer_gets_403_on_every_webhook_page(web_for, reviewer, model, webhook):
    delivery = event_emit(model=model, event_type=EventType.PRODUCTION_CHANGED, payload={}).deliveries.get()
    client = web_for(reviewer)
    urls = _urls(model, webhook, delivery)
    for url in urls["get"]:
        assert client.get(url).status_code == 403, url
    for url in urls["post"]:
        assert client.post(url, {"url": "https://example.com/", "active": "1"}).status_code == 403, url
    assert Webhook.objects.get().active and Delivery.objects.count() == 1


def test_an_outsider_gets_404_on_every_webhook_page(web_for, outsider, model, webhook):
    delivery = event_emit(model=model, event_type=EventType.PRODUCTION_CHANGED, payload={}).deliveries.get()
    client = web_for(outsider)
    urls = _urls(model, webhook, delivery)
    for url in urls["get"]:
        assert client.get(url).status_code == 404, url
    for url in urls["post"]:
        assert client.post(url, {"url": "https://example.com/"}).status_code == 404, url


def test_a_webhook_of_another_model_is_not_reachable_through_this_one(web_for, owner, model, receiver, allow_loopback):
    from apps.models.services import model_create

    other = model_create(name="other", actor=owner)
    foreign, _ = webhook_create(model=other, actor=owner, url=receiver.url())
    delivery = event_emit(model=other, event_type=EventType.PRODUCTION_CHANGED, payload={}).deliveries.get()
    client = web_for(owner)
    assert client.get(f"/models/{model.name}/webhooks/{foreign.pk}/").status_code == 404
    assert client.post(f"/models/{model.name}/webhooks/{foreign.pk}/delete/").status_code == 404
    assert client.post(f"/models/{model.name}/webhooks/{foreign.pk}/deliveries/{delivery.pk}/redeliver/").status_code == 404
    assert Webhook.objects.filter(pk=foreign.pk).exists()
