"""Every API error is JSON: {"error": {"code": ..., "message": ..., "fields": {...}?}}."""

import logging

from botocore.exceptions import BotoCoreError, ClientError

from django.core.exceptions import PermissionDenied, SuspiciousOperation, ValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.decorators import api_view
from rest_framework.response import Response
from rest_framework.views import exception_handler


logger = logging.getLogger(__name__)
STORAGE_ERRORS: tuple[type[BaseException], ...] = (OSError, BotoCoreError, ClientError)


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


def server_error(request, *args, **kwargs):
    """500 handler: JSON under /api/, Django's page elsewhere."""
    from django.http import JsonResponse
    from django.views.defaults import server_error as page_server_error

    if request.path.startswith("/api/"):
        return JsonResponse(error_body("server_error", "The server failed; the error was logged. Try again, or tell an administrator."), status=500)
    return page_server_error(request, *args, **kwargs)
