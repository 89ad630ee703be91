"""What the OpenAPI schema (drf-spectacular) says about the API's function views: one error envelope, declared once
and attached per status; list parameters read from the list's FilterSet; paginated answers; the token header."""

from collections.abc import Iterable

import django_filters
from django import forms
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.settings import api_settings


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable: invalid, not_found, permission_denied, not_authenticated, throttled, ...")
    message = serializers.CharField(help_text="What went wrong and what to do, for people.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Per field or query parameter, its problems (400 only).",
    )


class ErrorEnvelopeSerializer(serializers.Serializer):
    error = ErrorSerializer()


ERRORS = {
    400: "Bad request: a field, query parameter or header is unknown, missing or invalid (`fields` names each).",
    401: "No valid credentials: send `Authorization: Bearer <token>` or log in.",
    403: "You may see the model but lack the permission for this action.",
    404: "No such object, or you may not see it.",
    409: (
        "Conflict: the Idempotency-Key was used for another request (idempotency_key_reused), its first request is still"
        " running (idempotency_key_in_use, see Retry-After), or the state changed."
    ),
    413: "The upload is larger than the server accepts.",
    415: "Unsupported content type for the body.",
    416: "The Range starts past the end of the file (Content-Range says its size); ask again without it.",
    429: "Too many failed token attempts from this address (see Retry-After).",
    503: "The database or the artifact store is unavailable; try again later (see Retry-After).",
    507: "The upload spool is out of space; nothing was registered.",
}
EVERY_ENDPOINT = (401, 429, 503)


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """The JSON error envelope under each status (plus those every endpoint can answer)."""
    return {
        status: OpenApiResponse(response=ErrorEnvelopeSerializer, description=ERRORS[status])
        for status in sorted({*statuses, *EVERY_ENDPOINT})
    }


def _filter_type(filter_: django_filters.Filter) -> tuple[object, list | None]:
    field = filter_.field
    if isinstance(field, forms.ChoiceField) and not isinstance(field, forms.ModelChoiceField):
        return OpenApiTypes.STR, [value for value, _ in field.choices if value != ""]
    if isinstance(field, forms.IntegerField):
        return OpenApiTypes.INT, None
    if isinstance(field, (forms.FloatField, forms.DecimalField)):
        return OpenApiTypes.NUMBER, None
    if isinstance(field, forms.DateTimeField):
        return OpenApiTypes.DATETIME, None
    if isinstance(field, forms.DateField):
        return OpenApiTypes.DATE, None
    return OpenApiTypes.STR, None


def page_parameters() -> list[OpenApiParameter]:
    paginator = api_settings.DEFAULT_PAGINATION_CLASS
    return [
        OpenApiParameter(paginator.page_query_param, OpenApiTypes.INT, description="Page number, from 1."),
        OpenApiParameter(
            paginator.page_size_query_param, OpenApiTypes.INT,
            description=f"Items per page (default {paginator.page_size}, at most {paginator.max_page_size}).",
        ),
    ]


def cursor_parameters() -> list[OpenApiParameter]:
    """The parameters of a keyset-paged answer (`apps.web.lists.cursor_page`)."""
    paginator = api_settings.DEFAULT_PAGINATION_CLASS
    return [
        OpenApiParameter("cursor", OpenApiTypes.STR, description="Where the page starts: take it from a `next` or `previous` link."),
        OpenApiParameter(
            paginator.page_size_query_param, OpenApiTypes.INT,
            description=f"Rows a page ({paginator.page_size} by default, at most {paginator.max_page_size}).",
        ),
    ]


def filter_parameters(filterset_class: type[django_filters.FilterSet] | None) -> list[OpenApiParameter]:
    """One query parameter per filter of the FilterSet, then the paginator's."""
    parameters = []
    for name, filter_ in (filterset_class.base_filters.items() if filterset_class else ()):
        schema_type, enum = _filter_type(filter_)
        description = filter_.extra.get("help_text") or str(filter_.label or "")
        parameters.append(OpenApiParameter(name, schema_type, enum=enum, description=description))
    return parameters + page_parameters()


def page_schema(item, name: str) -> serializers.Serializer:
    """The schema of one page of a list: count, next, previous and the results (a serializer class, or any object)."""
    is_serializer = isinstance(item, type) and issubclass(item, serializers.BaseSerializer)
    results = item(many=True) if is_serializer else serializers.ListField(child=serializers.DictField())
    return inline_serializer(
        name=f"{name}Page",
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": results,
        },
    )


def documented(
    *,
    summary: str,
    responses: dict,
    errors: Iterable[int] = (),
    methods: list[str] | None = None,
    request=None,
    parameters: list[OpenApiParameter] | None = None,
    description: str | None = None,
    tags: list[str] | None = None,
    operation_id: str | None = None,
):
    """`extend_schema` for a function view: its answers, and the error envelope under each status it can refuse with."""
    return extend_schema(
        methods=methods,
        summary=summary,
        description=description,
        request=request,
        parameters=parameters,
        responses={**responses, **error_responses(*errors)},
        tags=tags,
        operation_id=operation_id,
    )


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.accounts.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A personal API token: `Authorization: Bearer mr_...`."}
