"""Every API error is JSON: {"error": {"code": ..., "message": ..., "fields": {...}?}}."""

import logging
import sys

from botocore.exceptions import BotoCoreError, ClientError

from django.conf import settings
from django.core.exceptions import PermissionDenied, SuspiciousOperation, ValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.decorators import api_view
from rest_framework.response import Response
from rest_framework.views import exception_handler


logger = logging.getLogger(__name__)
STORAGE_ERRORS: tuple[type[BaseException], ...] = (OSError, BotoCoreError, ClientError)
# Refused or reset connections, connect and answer timeouts, cancelled statements, deadlocks: worth a retry later.
DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (OperationalError, InterfaceError)


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    body = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


def _flatten(detail) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {_flatten(value)}" for key, value in detail.items())
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    return str(detail)


def json_error_handler(exc, context):
    if isinstance(exc, ValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else None
        message = _flatten(fields) if fields else " ".join(exc.messages)
        return Response(error_body("invalid", message, fields), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, STORAGE_ERRORS):
        logger.exception("Artifact storage failed")
        return Response(
            error_body("storage_unavailable", "The artifact store did not accept or return the data; nothing was registered. Try again later, or tell an administrator."),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    if isinstance(exc, SuspiciousOperation):
        return Response(error_body("bad_request", str(exc)), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or "You do not have permission to do this.")
    response = exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data.get("detail", response.data) if isinstance(response.data, dict) else response.data
    code = getattr(exc, "default_code", "error")
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else code
    fields = response.data if isinstance(response.data, dict) and "detail" not in response.data else None
    response.data = error_body(code, _flatten(detail), fields)
    return response


@api_view(["GET", "POST", "PUT", "PATCH", "DELETE"])
def json_not_found(request, *args, **kwargs):
    return Response(error_body("not_found", "No such API endpoint; see the README for the API's paths."), status=404)


def database_unavailable(request) -> HttpResponse:
    """503 with Retry-After when the database cannot be reached or did not answer: JSON under /api/, a page elsewhere."""
    retry_after = settings.DATABASE_RETRY_AFTER_SECONDS
    if request.path.startswith("/api/"):
        message = f"The database is unavailable or did not answer in time. Try again in {retry_after} s."
        response = JsonResponse(error_body("database_unavailable", message), status=503)
    else:
        response = HttpResponse(render_to_string("503.html", {"retry_after": retry_after}), status=503)
    response["Retry-After"] = str(retry_after)
    return response


def _api_error(request, status_code: int, code: str, message: str) -> JsonResponse | None:
    """The JSON error for a path under /api/ (an error raised outside DRF's views), None for a page."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(code, message), status=status_code)
    return None


def bad_request(request, exception):
    """400 handler: JSON under /api/, templates/400.html elsewhere."""
    return _api_error(request, 400, "bad_request", "The request could not be read.") or defaults.bad_request(request, exception)


def permission_denied(request, exception):
    """403 handler: JSON under /api/, templates/403.html (with the PermissionDenied message) elsewhere."""
    message = str(exception) or "You do not have permission to do this."
    return _api_error(request, 403, "permission_denied", message) or defaults.permission_denied(request, exception)


def page_not_found(request, exception):
    """404 handler: JSON under /api/, templates/404.html elsewhere. Django bypasses it when DEBUG is on (its URL list)."""
    return _api_error(request, 404, "not_found", "Not found.") or defaults.page_not_found(request, exception)


def server_error(request, *args, **kwargs):
    """500 handler: JSON under /api/, templates/500.html elsewhere; a 503 when the failure was the database (in middleware)."""
    if isinstance(sys.exc_info()[1], DATABASE_UNAVAILABLE):  # Django calls this handler inside its `except` block
        return database_unavailable(request)
    message = "The server failed; the error was logged. Try again, or tell an administrator."
    return _api_error(request, 500, "server_error", message) or defaults.server_error(request, *args, **kwargs)
