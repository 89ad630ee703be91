"""The id of the request being served, for audit entries written anywhere below the view."""

import re
import uuid
from contextvars import ContextVar

_current: ContextVar[str] = ContextVar("audit_request_id", default="")

# What we accept from a client's X-Request-ID: short, and nothing that could break a log line or a CSV cell.
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


def current_request_id() -> str:
    """The current request's id, or "" outside a request (management commands, workers)."""
    return _current.get()


def request_id_for(header: str | None) -> str:
    """The client's id when it is a safe token, else a fresh uuid4 hex."""
    if header and SAFE_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def bind(request_id: str):
    """Make `request_id` current; returns the token for `unbind`."""
    return _current.set(request_id)


def unbind(token) -> None:
    _current.reset(token)
