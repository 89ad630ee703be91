"""No upload body is read before the caller is authenticated and authorized for the model.

Against a live server on loopback: a 50 MB multipart body is streamed from a generator through a raw socket,
checking before each 64 KiB chunk whether the server has already answered. A refused caller gets the answer
while most of the body is still unsent (the server never waited for it) and no spool file or blob appears.
Before UploadGateMiddleware, CSRF parsed the whole body (spooling its files) before anyone checked anything.
"""

import http.client
import select
import socket
from urllib.parse import urlsplit

import pytest
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client

from apps.accounts.models import TokenScope

from apps.accounts.services import api_token_create
from apps.versions.models import ModelVersion
from tests.upload_spool import spool_fixture  # noqa: F401  (the `spool` fixture)

pytestmark = pytest.mark.django_db(transaction=True)

TOTAL = 50 * 1024 * 1024
CHUNK = 64 * 1024
BOUNDARY = "gate-test-boundary"
CSRF_COOKIE = _get_new_csrf_string()  # a well-formed token: without one CSRF refuses before reading, which would prove nothing


def _body_chunks():
    """The multipart body: one file part whose content is zeros, TOTAL bytes in all (bounded: TOTAL / CHUNK pieces)."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    yield head
    remaining = TOTAL - len(head) - len(tail)
    while remaining > 0:
        piece = min(CHUNK, remaining)
        yield b"\0" * piece
        remaining -= piece
    yield tail


def _read_head(sock) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        part = sock.recv(65536)
        if not part:
            break
        data += part
    return data


def stream_upload(live_server_url: str, path: str, *, session: str | None = None, token: str | None = None) -> tuple[int, bytes, int]:
    """POST a TOTAL-byte multipart body, stopping as soon as the server answers. Returns (status, response head, bytes sent)."""
    parts = urlsplit(live_server_url)
    cookies = f"csrftoken={CSRF_COOKIE}" + (f"; sessionid={session}" if session else "")
    headers = [
        f"POST {path} HTTP/1.1",
        f"Host: {parts.hostname}:{parts.port}",
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
        f"Content-Length: {TOTAL}",
        f"Cookie: {cookies}",
        *([f"Authorization: Bearer {token}"] if token else []),
    ]
    sent = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
        for chunk in _body_chunks():
            answered, _, _ = select.select([sock], [], [], 0)
            if answered:
                break
            try:
                sock.settimeout(10)  # a server that neither reads nor answers: stop sending and look for its answer
                sock.sendall(chunk)
            except (TimeoutError, BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        sock.settimeout(60)
        head = _read_head(sock)
    assert head.startswith(b"HTTP/1."), head[:200]
    return int(head.split(b" ", 2)[1]), head, sent


def _session_for(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def _assert_nothing_read(sent: int, spool, artifacts) -> None:
    assert sent < TOTAL, "the whole body was sent before the server answered: it waited for (read) the body"
    assert [p for p in spool.rglob("*") if p.is_file()] == []
    assert [p for p in artifacts.rglob("*") if p.is_file()] == []
    assert not ModelVersion.objects.exists()


def test_an_anonymous_upload_to_the_page_is_sent_to_log_in_before_its_body_is_read(live_server, model, spool, isolated_artifacts):
    status, head, sent = stream_upload(live_server.url, f"/models/{model.name}/versions/new/")
    assert status == 302 and b"Location: /accounts/login/?next=" in head
    _assert_nothing_read(sent, spool, isolated_artifacts)


def test_an_outsiders_upload_to_the_page_is_a_404_before_its_body_is_read(live_server, model, outsider, spool, isolated_artifacts):
    status, _, sent = stream_upload(live_server.url, f"/models/{model.name}/versions/new/", session=_session_for(outsider))
    assert status == 404
    _assert_nothing_read(sent, spool, isolated_artifacts)


def test_a_viewers_upload_to_the_page_is_a_403_before_its_body_is_read(live_server, model, reviewer, spool, isolated_artifacts):
    status, _, sent = stream_upload(live_server.url, f"/models/{model.name}/versions/new/", session=_session_for(reviewer))
    assert status == 403
    _assert_nothing_read(sent, spool, isolated_artifacts)


def test_an_outsiders_session_upload_to_the_api_is_a_json_404_before_its_body_is_read(live_server, model, outsider, spool, isolated_artifacts):
    status, head, sent = stream_upload(live_server.url, f"/api/v1/models/{model.name}/versions/", session=_session_for(outsider))
    assert status == 404 and b"application/json" in head
    _assert_nothing_read(sent, spool, isolated_artifacts)


@pytest.mark.parametrize("who, expected", [("outsider", 404), ("reviewer", 403)])
def test_a_token_upload_to_the_api_without_register_permission_is_refused_before_its_body_is_read(
    live_server, model, request, spool, isolated_artifacts, who, expected
):
    _, token = api_token_create(user=request.getfixturevalue(who), name="pipeline", scope=TokenScope.FULL)
    status, _, sent = stream_upload(live_server.url, f"/api/v1/models/{model.name}/versions/", token=token)
    assert status == expected
    _assert_nothing_read(sent, spool, isolated_artifacts)


@pytest.mark.parametrize("token", [None, "mr_made_up"], ids=["no-credentials", "unknown-token"])
def test_an_unauthenticated_upload_to_the_api_is_a_401_before_its_body_is_read(live_server, model, spool, isolated_artifacts, token):
    status, _, sent = stream_upload(live_server.url, f"/api/v1/models/{model.name}/versions/", token=token)
    assert status == 401
    _assert_nothing_read(sent, spool, isolated_artifacts)


def test_a_file_posted_to_a_page_that_takes_no_files_is_never_spooled(live_server, model, outsider, spool, isolated_artifacts):
    """CSRF reads request.POST on every page; outside the upload routes the upload handler stops at the first file."""
    status, _, sent = stream_upload(live_server.url, f"/models/{model.name}/edit/", session=_session_for(outsider))
    assert status == 403  # CSRF: the token field never arrived
    _assert_nothing_read(sent, spool, isolated_artifacts)


def _small_multipart(fields: dict[str, str]) -> bytes:
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n' for name, value in fields.items()]
    parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="model.bin"\r\n\r\nweights\r\n--{BOUNDARY}--\r\n')
    return "".join(parts).encode()


def test_the_owner_still_uploads_through_the_page_and_the_api(live_server, model, owner, spool):
    """The gate lets the permitted caller through, and the body is read as before."""
    parts = urlsplit(live_server.url)
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    page = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    page.request(
        "POST", f"/models/{model.name}/versions/new/", body=_small_multipart({"csrfmiddlewaretoken": CSRF_COOKIE, "flavor": "custom"}),
        headers={"Content-Type": content_type, "Cookie": f"csrftoken={CSRF_COOKIE}; sessionid={_session_for(owner)}"},
    )
    response = page.getresponse()
    assert response.status == 302 and response.getheader("Location") == f"/models/{model.name}/versions/1/"
    _, token = api_token_create(user=owner, name="pipeline", scope=TokenScope.FULL)
    api = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    api.request(
        "POST", f"/api/v1/models/{model.name}/versions/", body=_small_multipart({"metadata": "{}"}),
        headers={"Content-Type": content_type, "Authorization": f"Bearer {token}"},
    )
    assert api.getresponse().status == 201
    assert list(ModelVersion.objects.order_by("number").values_list("number", flat=True)) == [1, 2]
