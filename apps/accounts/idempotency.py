"""Idempotency-Key: a write retried with the same key gets the first attempt's answer instead of being done twice.

Follows the IETF draft "The Idempotency-Key HTTP Header Field" (draft-ietf-httpapi-idempotency-key-header) and
Stripe's API. The key is chosen by the client (a UUID), one per operation, and sent again on each retry of it.

- Keys belong to the caller: the same key from two users names two operations.
- The request is fingerprinted: SHA-256 over method, path and body. A multipart body counts by its manifest (the
  fields, and each file's name, size and SHA-256, computed while the upload streamed), so a file is never read twice.
- The first answer is stored in the write's own transaction (`IdempotentCall.record`), so a committed write always
  has its answer stored, and the answer sent is the one rendered before the commit: nothing after the commit can
  turn a done write into an error the client would retry blindly.
- A retry with the same key and the same request gets the stored answer again (header `Idempotent-Replayed: true`);
  the same key with another request is 409 `idempotency_key_reused` (never worth retrying); the same key while its
  first request is still running is 409 `idempotency_key_in_use` with Retry-After (worth retrying): clients tell
  the two apart by the error code. Only successes are stored: a
  refused request (400, 403, 404, ...) changed nothing and may be sent again, corrected, under the same key.
- Answers are kept IDEMPOTENCY_KEY_HOURS (24 by default); the periodic `purge_idempotency_records` task deletes
  them after that, and an expired key may name a new operation.
"""

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.http import HttpResponse
from django.utils import timezone
from rest_framework import status as http_status
from rest_framework.exceptions import APIException
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from .models import IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
T = TypeVar("T")


class IdempotencyKeyInUse(APIException):
    status_code = http_status.HTTP_409_CONFLICT
    default_code = "idempotency_key_in_use"
    default_detail = f"A request with this {HEADER} is still being processed. Retry later with the same key to get its result."

    def __init__(self):
        super().__init__()
        self.wait = settings.IDEMPOTENCY_RETRY_AFTER_SECONDS  # DRF's handler turns it into Retry-After


class IdempotencyKeyReused(APIException):
    status_code = http_status.HTTP_409_CONFLICT
    default_code = "idempotency_key_reused"
    default_detail = (
        f"This {HEADER} was already used for a different request (another path or body). "
        "Send a new key for a new operation, or the original request unchanged to get its result."
    )


def idempotency_key(request) -> str | None:
    """The key of the request, or None without the header. A malformed key is a 400 naming the header.

    Both the draft's form (a Structured Field string: "...") and Stripe's bare form are accepted.
    """
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    key = _unquoted(raw.strip())
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        problem = f"got {len(key)} characters"
    elif not all(" " <= character <= "~" for character in key):
        problem = "got a non-ASCII or control character"
    else:
        return key
    raise ValidationError({HEADER: [f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters (a UUID is a good key); {problem}."]})


def _unquoted(value: str) -> str:
    if not (len(value) >= 2 and value[0] == value[-1] == '"'):
        return value
    inner, result, index = value[1:-1], [], 0
    while index < len(inner):
        character = inner[index]
        if character == "\\" and index + 1 < len(inner) and inner[index + 1] in '"\\':
            character, index = inner[index + 1], index + 1
        elif character in '"\\':
            raise ValidationError({HEADER: [f"{HEADER} is a quoted string with an unescaped {character!r}."]})
        result.append(character)
        index += 1
    return "".join(result)


def request_fingerprint(request) -> str:
    """SHA-256 of method, path and body; of a multipart body, its manifest (fields, and per file name, size and digest)."""
    digest = hashlib.sha256(f"{request.method}\n{request.get_full_path()}\n".encode())
    if request.META.get("CONTENT_TYPE", "").startswith("multipart/"):
        manifest = {
            "fields": [[name, values] for name, values in request.POST.lists()],
            "files": [[name, [_file_manifest(upload) for upload in uploads]] for name, uploads in request.FILES.lists()],
        }
        digest.update(json.dumps(manifest).encode())
    else:
        digest.update(request.body)
    return digest.hexdigest()


def _file_manifest(upload) -> list:
    sha256 = getattr(upload, "sha256", None)  # computed while it streamed (apps.versions.uploads.HashingUploadHandler)
    if sha256 is None:
        hasher = hashlib.sha256()
        for chunk in upload.chunks():
            hasher.update(chunk)
        upload.seek(0)
        sha256 = hasher.hexdigest()
    return [upload.name, getattr(upload, "received_bytes", upload.size), sha256]


def _lock_id(user_id: int, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"idempotency\0{user_id}\0{key}".encode()).digest()[:8], "big", signed=True)


@contextmanager
def _key_held(user_id: int, key: str) -> Iterator[None]:
    """A session advisory lock on (user, key) for the whole request: a second request with the key is refused at once.

    Held by the connection, so a request whose process dies lets go with its connection. Without PostgreSQL there is
    no lock; the unique (user, key) row still lets only one of two concurrent writes commit.
    """
    if connection.vendor != "postgresql":
        yield
        return
    lock_id = _lock_id(user_id, key)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [lock_id])
        taken = cursor.fetchone()[0]
    if not taken:
        raise IdempotencyKeyInUse()
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_id])
        except DatabaseError:
            # The write's answer is ready and must go out; closing the connection releases the lock all the same.
            connection.close()


class IdempotentCall:
    """One write, maybe under an Idempotency-Key. `replayed` is the stored answer when there is one; otherwise the
    write runs and calls `record` inside its transaction, and the view answers with `respond()`."""

    def __init__(self, request, key: str | None):
        self.request, self.key = request, key
        self.fingerprint = request_fingerprint(request) if key is not None else None
        self.replayed = self._stored_answer() if key is not None else None
        self._answer: tuple[int, dict] | None = None

    def _stored_answer(self) -> HttpResponse | None:
        stored = IdempotencyRecord.objects.filter(user=self.request.user, key=self.key, expires_at__gt=timezone.now()).first()
        if stored is None:
            return None
        if stored.fingerprint != self.fingerprint:
            raise IdempotencyKeyReused()
        return HttpResponse(stored.body, status=stored.status_code, content_type="application/json", headers={REPLAYED_HEADER: "true"})

    def record(self, *, status: int, body: dict) -> None:
        """Keep the answer; with a key, store it. Call inside the write's transaction, with the body rendered there."""
        if not connection.in_atomic_block:
            raise RuntimeError("IdempotentCall.record() belongs inside the write's transaction.")
        self._answer = (status, body)
        if self.key is None:
            return
        now = timezone.now()
        IdempotencyRecord.objects.filter(user=self.request.user, key=self.key, expires_at__lte=now).delete()
        try:
            IdempotencyRecord.objects.create(
                user=self.request.user,
                key=self.key,
                fingerprint=self.fingerprint,
                status_code=status,
                body=JSONRenderer().render(body).decode(),
                created_at=now,
                expires_at=now + timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS),
            )
        except IntegrityError as exc:  # a concurrent request with the key committed first (only without the lock)
            raise IdempotencyKeyInUse() from exc

    def respond(self) -> Response:
        if self._answer is None:
            raise RuntimeError("The write did not record its answer.")
        status, body = self._answer
        return Response(body, status=status)

    def perform(self, write: Callable[[], T], *, status: int, render: Callable[[T], dict]) -> Response:
        """Run `write` (an atomic service) and render its result in the same transaction, then answer with it."""
        with transaction.atomic():
            self.record(status=status, body=render(write()))
        return self.respond()


@contextmanager
def idempotent_call(request) -> Iterator[IdempotentCall]:
    """Enter after the caller is authorized and before the body is read: the key is checked (400), taken (409 if in
    use) and only then is the body read to fingerprint it (409 if the key was used for another request)."""
    key = idempotency_key(request)
    if key is None:
        yield IdempotentCall(request, None)
        return
    with _key_held(request.user.pk, key):
        yield IdempotentCall(request, key)


def idempotent_response(request, write: Callable[[], T], *, status: int, render: Callable[[T], dict]) -> HttpResponse:
    """The whole protocol for a write that is one atomic service: the stored answer, or the write and its answer."""
    with idempotent_call(request) as call:
        if call.replayed is not None:
            return call.replayed
        return call.perform(write, status=status, render=render)


def idempotency_records_purge() -> int:
    """Delete the answers kept past IDEMPOTENCY_KEY_HOURS. Returns how many went."""
    deleted, _ = IdempotencyRecord.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
