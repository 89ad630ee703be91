"""MLflow's error JSON, `{"error_code": ..., "message": ...}`, with the HTTP statuses MLflow's server uses.

The MLflow client turns these into `RestException`s carrying the code. Every exception the registry's services raise
maps onto one: not visible or absent -> RESOURCE_DOES_NOT_EXIST, not allowed -> PERMISSION_DENIED, bad input ->
INVALID_PARAMETER_VALUE, no or bad token -> UNAUTHENTICATED.
"""

import logging

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import TextChoices
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response

from apps.web.errors import STORAGE_ERRORS

logger = logging.getLogger(__name__)


class ErrorCode(TextChoices):
    RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
    RESOURCE_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
    INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    ENDPOINT_NOT_FOUND = "ENDPOINT_NOT_FOUND"
    REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
    TEMPORARILY_UNAVAILABLE = "TEMPORARILY_UNAVAILABLE"
    BAD_REQUEST = "BAD_REQUEST"


# As mlflow.exceptions.ERROR_CODE_TO_HTTP_STATUS.
HTTP_STATUS = {
    ErrorCode.RESOURCE_DOES_NOT_EXIST: 404,
    ErrorCode.RESOURCE_ALREADY_EXISTS: 400,
    ErrorCode.INVALID_PARAMETER_VALUE: 400,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.ENDPOINT_NOT_FOUND: 404,
    ErrorCode.REQUEST_LIMIT_EXCEEDED: 429,
    ErrorCode.TEMPORARILY_UNAVAILABLE: 503,
    ErrorCode.BAD_REQUEST: 400,
}


class MlflowError(Exception):
    def __init__(self, code: ErrorCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> MlflowError:
    return MlflowError(ErrorCode.INVALID_PARAMETER_VALUE, message)


def not_found(message: str) -> MlflowError:
    return MlflowError(ErrorCode.RESOURCE_DOES_NOT_EXIST, message)


def error_response(code: ErrorCode, message: str, headers: dict | None = None) -> Response:
    return Response({"error_code": code.value, "message": message}, status=HTTP_STATUS[code], headers=headers)


def _validation_message(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{key}: {' '.join(messages)}" if key != "__all__" else " ".join(messages) for key, messages in exc.message_dict.items())
    return " ".join(exc.messages)


def mlflow_error_handler(exc, context) -> Response | None:
    """DRF's exception handler for the MLflow endpoints (set per view by `apps.mlflow_api.api.endpoint`)."""
    if isinstance(exc, MlflowError):
        return error_response(exc.code, exc.message)
    if isinstance(exc, Http404):
        return error_response(ErrorCode.RESOURCE_DOES_NOT_EXIST, str(exc) or "Not found.")
    if isinstance(exc, (PermissionDenied, exceptions.PermissionDenied)):
        return error_response(ErrorCode.PERMISSION_DENIED, str(exc) or "You do not have permission to do this.")
    if isinstance(exc, ValidationError):
        return error_response(ErrorCode.INVALID_PARAMETER_VALUE, _validation_message(exc))
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        message = str(exc.detail)
        if isinstance(exc, exceptions.NotAuthenticated):
            message = "Send a registry API token: set MLFLOW_TRACKING_TOKEN (it is sent as 'Authorization: Bearer <token>')."
        return error_response(ErrorCode.UNAUTHENTICATED, message, headers={"WWW-Authenticate": 'Bearer realm="api"'})
    if isinstance(exc, exceptions.Throttled):
        return error_response(ErrorCode.REQUEST_LIMIT_EXCEEDED, str(exc.detail), headers={"Retry-After": str(exc.wait or 60)})
    if isinstance(exc, exceptions.MethodNotAllowed):
        # The path exists, so a 405 (as MLflow's Flask server answers), in MLflow's error shape.
        return Response({"error_code": ErrorCode.ENDPOINT_NOT_FOUND.value, "message": str(exc.detail)}, status=exc.status_code)
    if isinstance(exc, exceptions.APIException) and exc.status_code == 400 or isinstance(exc, (exceptions.ParseError, exceptions.UnsupportedMediaType)):
        return error_response(ErrorCode.BAD_REQUEST, str(exc.detail))
    if isinstance(exc, STORAGE_ERRORS):
        logger.exception("Artifact storage failed")
        return error_response(ErrorCode.TEMPORARILY_UNAVAILABLE, "The artifact store did not accept or return the data; nothing was registered. Try again later.")
    return None
