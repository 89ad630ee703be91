from django.core.exceptions import ValidationError
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from apps.accounts.idempotency import idempotent_response
from apps.web.openapi import documented
from apps.models.permissions import get_model_for
from apps.versions.selectors import production_at, production_history, version_or_404

from .selectors import request_for
from .serializers import request_to_dict
from .services import (
    production_rollback,
    transition_request_approve,
    transition_request_create,
    transition_request_override_quality,
    transition_request_reject,
    transition_request_withdraw,
)

TRANSITION_REQUEST_SCHEMA = OpenApiTypes.OBJECT  # serializers.request_to_dict
TransitionRequestBody = inline_serializer(
    name="TransitionRequestBody",
    fields={"to_stage": serializers.CharField(), "comment": serializers.CharField(required=False, help_text="Why (or `justification`).")},
)


class PointerChangeSerializer(serializers.Serializer):
    """One move of the production pointer, as `_change_to_dict` renders it."""

    changed_at = serializers.DateTimeField()
    kind = serializers.CharField()
    version = serializers.IntegerField(allow_null=True)
    previous_version = serializers.IntegerField(allow_null=True)
    actor = serializers.CharField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)


def _text(request, key: str) -> str:
    value = request.data.get(key) if hasattr(request.data, "get") else None
    if value is not None and not isinstance(value, str):
        raise ValidationError({key: ["Must be a string."]})
    return value or ""


@documented(
    summary="Ask to move a version to a stage (applied at once when no approval is needed)",
    request=TransitionRequestBody,
    responses={201: TRANSITION_REQUEST_SCHEMA},
    errors=[400, 403, 404, 409, 415],
)
@api_view(["POST"])
def transition_request_collection(request, name: str, number: int):
    model = get_model_for(request.user, name)
    version = version_or_404(model, number)
    return idempotent_response(
        request,
        lambda: transition_request_create(
            version=version, to_stage=_text(request, "to_stage"), actor=request.user, justification=_text(request, "comment") or _text(request, "justification")
        ),
        status=201,
        render=lambda created: request_to_dict(request_for(request.user, created.pk)),
    )


@documented(summary="Read a transition request", responses={200: TRANSITION_REQUEST_SCHEMA}, errors=[404])
@api_view(["GET"])
def transition_request_detail(request, pk: int):
    return Response(request_to_dict(request_for(request.user, pk)))


def _decision(service, summary: str, **extra):
    @documented(
        summary=summary,
        request=inline_serializer(name=f"{service.__name__}_body", fields={key: serializers.CharField(required=False) for key in extra}),
        responses={200: TRANSITION_REQUEST_SCHEMA},
        errors=[400, 403, 404, 409, 415],
    )
    @api_view(["POST"])
    def view(request, pk: int):
        target = request_for(request.user, pk)
        return idempotent_response(
            request,
            lambda: service(transition_request=target, actor=request.user, **{key: _text(request, key) for key in extra}),
            status=200,
            render=lambda _: request_to_dict(request_for(request.user, pk)),
        )

    return view


approve = _decision(transition_request_approve, "Approve a pending request (reviewers other than the requester)", comment=True)
reject = _decision(transition_request_reject, "Reject a pending request", comment=True)
withdraw = _decision(transition_request_withdraw, "Withdraw your own pending request")
override_quality = _decision(transition_request_override_quality, "Override a failed quality gate (managers)", reason=True)


@documented(
    summary="Roll production back to the previous production version, or a chosen earlier one",
    request=inline_serializer(
        name="RollbackBody",
        fields={"reason": serializers.CharField(), "to_version": serializers.IntegerField(required=False, allow_null=True)},
    ),
    responses={201: PointerChangeSerializer},
    errors=[400, 403, 404, 409, 415],
)
@api_view(["POST"])
def rollback(request, name: str):
    model = get_model_for(request.user, name)
    return idempotent_response(
        request,
        lambda: production_rollback(model=model, actor=request.user, reason=_text(request, "reason"), to_version=_rollback_target(request, model)),
        status=201,
        render=_change_to_dict,
    )


def _rollback_target(request, model):
    number = request.data.get("to_version") if hasattr(request.data, "get") else None
    if number is not None and (isinstance(number, bool) or not isinstance(number, int)):
        raise ValidationError({"to_version": ["Give a version number, e.g. {\"to_version\": 3}, or leave it out for the previous one."]})
    return version_or_404(model, number) if number is not None else None


def _change_to_dict(change) -> dict:
    return {
        "changed_at": change.changed_at.isoformat(),
        "kind": change.kind,
        "version": change.version.number if change.version else None,
        "previous_version": change.previous_version.number if change.previous_version else None,
        "actor": change.actor.get_username() if change.actor else None,
        "reason": change.reason,
    }


@documented(
    summary="The production pointer's history, or (with ?at=) the version in production at an instant",
    parameters=[OpenApiParameter("at", OpenApiTypes.DATETIME, description="ISO 8601 instant with a time zone.")],
    responses={
        200: PolymorphicProxySerializer(
            component_name="ProductionHistoryAnswer",
            serializers=[
                inline_serializer(name="ProductionHistory", fields={"model": serializers.CharField(), "history": PointerChangeSerializer(many=True)}),
                inline_serializer(name="ProductionAt", fields={"at": serializers.DateTimeField(), "version": serializers.IntegerField(allow_null=True)}),
            ],
            resource_type_field_name=None,
        )
    },
    errors=[400, 404],
)
@api_view(["GET"])
def production_pointer_history(request, name: str):
    model = get_model_for(request.user, name)
    at = request.query_params.get("at")
    if at:
        try:
            when = parse_datetime(at)
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            raise ValidationError({"at": ["Give an ISO 8601 instant with a time zone, e.g. 2026-11-27T10:00:00Z."]})
        version = production_at(model, when)
        return Response({"at": when.isoformat(), "version": version.number if version else None})
    return Response({"model": model.name, "history": [_change_to_dict(c) for c in production_history(model)[:500]]})
