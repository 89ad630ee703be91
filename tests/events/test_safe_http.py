"""Webhooks are no way into the internal network: refused at creation and again at delivery, without connecting."""

import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading

import pytest
from django.core.exceptions import ValidationError

from apps.events import safe_http
from apps.events.models import DeliveryStatus, EventType, Webhook
from apps.events.services import delivery_attempt, event_emit, webhook_create

pytestmark = pytest.mark.django_db

INTERNAL = [
    ("http://127.0.0.1/hook", "127.0.0.1 is a loopback address"),
    ("http://localhost:8000/hook", "localhost resolves to 127.0.0.1, a loopback address"),
    ("http://127.1/hook", "resolves to 127.0.0.1, a loopback address"),
    ("http://2130706433/hook", "resolves to 127.0.0.1, a loopback address"),
    ("http://10.0.0.1/hook", "10.0.0.1 is a private address"),
    ("http://192.168.1.20/hook", "a private address"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is the cloud metadata address"),
    ("http://169.254.10.10/", "a link-local address"),
    ("http://[::1]:8080/hook", "::1 is a loopback address"),
    ("http://[fd00:ec2::254]/", "the cloud metadata address"),
    ("http://[::ffff:127.0.0.1]/", "a loopback address (embedded in an IPv6 address)"),
    ("http://[fe80::1]/", "a link-local address"),
    ("http://0.0.0.0/", "an unspecified address"),
    ("http://224.0.0.1/", "a multicast address"),
    ("http://100.64.0.1/", "not a public address"),
]
MALFORMED = [
    ("ftp://example.com/hook", "Only http:// and https:// URLs are allowed."),
    ("file:///etc/passwd", "Only http:// and https:// URLs are allowed."),
    ("gopher://127.0.0.1:6379/_FLUSHALL", "Only http:// and https:// URLs are allowed."),
    ("http://deploy:hunter2@example.com/hook", "Credentials in the URL are not allowed"),
    ("http:///hook", "The URL needs a host"),
    ("http://example.com:99999/", "not a valid URL"),
    ("http://exa mple.com/", "spaces or control characters"),
    ("http://example.com/\r\nX-Injected: 1", "spaces or control characters"),
]


@pytest.mark.parametrize(("url", "message"), INTERNAL)
def test_internal_addresses_are_refused_at_creation_with_a_clear_error(model, owner, url, message):
    with pytest.raises(ValidationError) as refused:
        webhook_create(model=model, actor=owner, url=url)
    (error,) = refused.value.message_dict["url"]
    assert message in error and "WEBHOOK_ALLOWED_INTERNAL_HOSTS" in error
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(("url", "message"), MALFORMED)
def test_other_schemes_credentials_and_malformed_urls_are_refused(model, owner, url, message):
    with pytest.raises(ValidationError) as refused:
        webhook_create(model=model, actor=owner, url=url)
    assert message in refused.value.message_dict["url"][0]


def test_the_resolver_check_refuses_a_name_that_resolves_to_loopback():
    target = safe_http.parse_target("https://LocalHost:8443/deploy?env=prod")
    assert (target.scheme, target.host, target.port, target.request_path) == ("https", "localhost", 8443, "/deploy?env=prod")
    with pytest.raises(safe_http.RefusedDestination, match="localhost resolves to 127.0.0.1, a loopback address"):
        safe_http.vet(target)


def test_public_addresses_pass_the_address_check():
    for address in ("93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"):
        assert safe_http.address_problem(ipaddress.ip_address(address)) is None, address


def test_the_allow_setting_opens_only_the_hosts_and_networks_it_names(settings):
    settings.WEBHOOK_ALLOWED_INTERNAL_HOSTS = ["127.0.0.1", "10.20.0.0/16", "localhost"]
    assert safe_http.check_destination("http://127.0.0.1:9/hook") == [ipaddress.ip_address("127.0.0.1")]
    assert safe_http.check_destination("http://10.20.3.4/hook")
    assert safe_http.check_destination("http://localhost:9/hook")
    for url in ("http://10.21.0.1/", "http://192.168.0.1/", "http://[::1]/"):
        with pytest.raises(safe_http.RefusedDestination):
            safe_http.check_destination(url)


def test_a_host_name_on_the_allow_list_never_unlocks_the_metadata_address(settings):
    settings.WEBHOOK_ALLOWED_INTERNAL_HOSTS = ["169.254.169.254.internal"]
    target = safe_http.Target("http", "169.254.169.254", 80, "/")
    with pytest.raises(safe_http.RefusedDestination, match="metadata"):
        safe_http.vet(target)
    settings.WEBHOOK_ALLOWED_INTERNAL_HOSTS = ["169.254.169.254"]
    assert safe_http.vet(target) == [ipaddress.ip_address("169.254.169.254")]


def test_an_unresolvable_host_is_a_clear_form_error(model, owner):
    with pytest.raises(ValidationError, match="could not be resolved"):
        webhook_create(model=model, actor=owner, url="https://hooks.example.invalid/deploy")


def test_a_receiver_that_became_internal_is_refused_at_delivery_without_a_connection(model, webhook, receiver, settings):
    settings.WEBHOOK_ALLOWED_INTERNAL_HOSTS = []  # the allow-list changed after the webhook was created
    delivery = event_emit(model=model, event_type=EventType.PRODUCTION_ROLLED_BACK, payload={}).deliveries.get()

    outcome = delivery_attempt(delivery_id=delivery.pk)

    assert outcome.status == DeliveryStatus.GAVE_UP and outcome.attempts == 1 and outcome.last_status_code is None
    assert outcome.last_error.startswith("Refused, not sent: 127.0.0.1 is a loopback address.")
    assert receiver.requests == []


def test_a_name_that_now_resolves_to_loopback_is_refused_at_delivery_without_a_connection(model, webhook, receiver, settings):
    settings.WEBHOOK_ALLOWED_INTERNAL_HOSTS = []
    Webhook.objects.filter(pk=webhook.pk).update(url=f"http://localhost:{receiver.port}/hook")  # as if its DNS record changed
    delivery = event_emit(model=model, event_type=EventType.PRODUCTION_CHANGED, payload={}).deliveries.get()

    outcome = delivery_attempt(delivery_id=delivery.pk)

    assert outcome.status == DeliveryStatus.GAVE_UP and "localhost resolves to 127.0.0.1, a loopback address" in outcome.last_error
    assert receiver.requests == []


def test_the_connection_goes_to_the_vetted_address_and_names_the_original_host(receiver):
    """The name below never resolves: the request can only arrive because the vetted address is used as is."""
    target = safe_http.Target("http", "deploy.hooks.invalid", receiver.port, "/hook?env=prod")
    answer = safe_http.send_to(target, ipaddress.ip_address("127.0.0.1"), body=b"{}", headers={"Content-Type": "application/json"})
    assert answer.status == 200 and answer.address == "127.0.0.1"
    (request,) = receiver.requests
    assert request.headers["Host"] == f"deploy.hooks.invalid:{receiver.port}" and request.path == "/hook?env=prod"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed, so the test cannot make a certificate")
def test_https_sends_the_original_host_name_as_sni_and_verifies_the_certificate(tmp_path):
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=deploy.hooks.invalid",
         "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
        check=True, capture_output=True,
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    seen = []
    server_context.sni_callback = lambda _sock, name, _ctx: seen.append(name)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve_one():
        conn, _ = listener.accept()
        try:
            server_context.wrap_socket(conn, server_side=True).close()
        except (ssl.SSLError, OSError):
            conn.close()

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    target = safe_http.Target("https", "deploy.hooks.invalid", listener.getsockname()[1], "/hook")
    try:
        with pytest.raises(safe_http.DeliveryFailed, match="TLS certificate was not accepted"):
            safe_http.send_to(target, ipaddress.ip_address("127.0.0.1"), body=b"{}", headers={})
    finally:
        thread.join(5)
        listener.close()
    assert seen == ["deploy.hooks.invalid"]


def test_the_excerpt_is_one_printable_line_of_at_most_200_characters():
    assert safe_http.excerpt(b"\x00Bad\r\n\tGateway\x1b[31m") == "Bad Gateway [31m"
    assert safe_http.excerpt("é".encode() * 500) == "é" * 200
    assert safe_http.excerpt(b"\xff\xfe") == "\ufffd\ufffd"
