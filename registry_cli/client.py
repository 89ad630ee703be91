"""The HTTP client every command uses: the token, one-line errors, retries of what is safe to repeat."""

import http.client
import json
import random
import sys
import time
from urllib.parse import urlsplit

RETRY_STATUSES = (502, 503, 504)
MAX_RETRY_WAIT_SECONDS = 60.0


class CliError(Exception):
    """A failure to report as one line and exit code 1."""


class RetryableError(CliError):
    """A failure that a repeat of the same request may not meet: the connection, a gateway, an overloaded registry."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def connection_for(url_parts) -> http.client.HTTPConnection:
    factory = http.client.HTTPSConnection if url_parts.scheme == "https" else http.client.HTTPConnection
    return factory(url_parts.hostname, url_parts.port, timeout=600)


class Client:
    def __init__(self, base_url: str, token: str, retries: int = 0):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CliError(f"REGISTRY_URL must be an http(s) URL like https://registry.example.com, not {base_url!r}.")
        self.parts = parts
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.prefix = parts.path.rstrip("/")
        self.token = token
        self.retries = retries

    def unreachable(self, exc: Exception) -> RetryableError:
        return RetryableError(f"Could not reach the registry at {self.scheme}://{self.host}: {exc or type(exc).__name__}. Check REGISTRY_URL and the network.")

    def request_with_retries(self, method: str, path: str, *, body, headers: dict) -> dict:
        """Send a request that is safe to repeat (it changes nothing, or carries an Idempotency-Key), retrying what may pass next time.

        `body` makes the body afresh for each attempt. At most `self.retries` retries, with exponential backoff.
        """
        return self.with_retries(lambda: self.request(method, path, body=body(), headers=headers), same_key="Idempotency-Key" in headers)

    def with_retries(self, attempt_once, *, same_key: bool = False):
        """Call `attempt_once()` until it does not raise RetryableError, at most `self.retries` more times."""
        attempt = 0
        while True:
            try:
                return attempt_once()
            except RetryableError as exc:
                if attempt == self.retries:
                    raise
                wait = _retry_wait(attempt, exc.retry_after)
                attempt += 1
                key = " with the same Idempotency-Key" if same_key else ""
                print(f"model-registry: {exc} Retrying in {wait:.1f} s{key} ({attempt} of {self.retries}).", file=sys.stderr)
                time.sleep(wait)

    def request(self, method: str, path: str, *, body=None, headers: dict | None = None):
        """Send one request and answer its JSON; an error answer raises CliError (RetryableError if a repeat may pass)."""
        connection = connection_for(self.parts)
        try:
            try:
                connection.request(method, self.prefix + path, body=body, headers=self._headers(headers))
                response = connection.getresponse()
                if response.status >= 400:
                    raise answer_error(response)
                raw = response.read()
            except (OSError, http.client.HTTPException) as exc:
                raise self.unreachable(exc) from exc
            if response.getheader("Idempotent-Replayed") == "true":
                print("model-registry: the registry had already done this (an earlier attempt's answer was lost); here is its answer.", file=sys.stderr)
            return json.loads(raw or b"null")
        finally:
            connection.close()

    def get_all(self, path: str, rows: str) -> dict:
        """GET a paged list and every page its `next` links lead to: the first page's answer, with `rows` (its list's
        key, e.g. "results") holding the rows of all pages and no `next` or `previous` left to follow."""
        first = answer = self.request("GET", path)
        collected = list(answer[rows])
        while answer.get("next"):
            parts = urlsplit(answer["next"])
            if (parts.scheme, parts.hostname, parts.port) != (self.scheme, self.host, self.port) or not parts.path.startswith(self.prefix + "/"):
                raise CliError(f"The registry's next page {answer['next']!r} is not on REGISTRY_URL; not following it.")
            answer = self.request("GET", parts.path[len(self.prefix):] + (f"?{parts.query}" if parts.query else ""))
            collected.extend(answer[rows])
        return {**first, rows: collected, "next": None, "previous": None}

    def open(self, path: str, *, headers: dict | None = None) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Start a GET whose body the caller reads (and then closes the connection). Redirects and errors are the caller's."""
        connection = connection_for(self.parts)
        try:
            connection.request("GET", self.prefix + path, headers=self._headers(headers))
            return connection, connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise self.unreachable(exc) from exc

    def _headers(self, extra: dict | None) -> dict:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/json", **(extra or {})}


def answer_error(response) -> CliError:
    raw = response.read()
    try:
        error = json.loads(raw)["error"]
        message, code = error["message"], error.get("code")
    except (ValueError, KeyError, TypeError, AttributeError):
        message, code = raw[:200].decode(errors="replace") or "no details", None
    hint = {401: " Check REGISTRY_TOKEN (create one under 'API tokens').", 404: " Check the model name and version (and that you may view it)."}
    text = f"The registry answered {response.status}: {message}{hint.get(response.status, '')}"
    if response.status in RETRY_STATUSES or (response.status == 409 and code in ("idempotency_key_in_use", "upload_in_progress")):
        return RetryableError(text, retry_after=_seconds(response.getheader("Retry-After")))
    return CliError(text)


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: use the backoff instead


def _retry_wait(attempt: int, retry_after: float | None) -> float:
    """What the registry asked for, else 1, 2, 4, ... s with jitter so that many clients do not retry in step."""
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_WAIT_SECONDS)
    return min(2.0**attempt, MAX_RETRY_WAIT_SECONDS) * random.uniform(0.75, 1.0)
