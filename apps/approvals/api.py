from django.core.exceptions import ValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from apps.accounts.idempotency import idempotent_response
from apps.web.lists import cursor_page
from apps.web.openapi import cursor_parameters, documented
from apps.web.serializers import instant_parameter, validated_body
from apps.models.permissions import Action, get_model_for, require, require_rollback
from apps.versions.aliases import PRODUCTION_ALIAS
from apps.versions.selectors import production_at, production_history, version_or_404

from .selectors import transition_request_for
from .serializers import (
    DecisionBodySerializer,
    OverrideQualityBodySerializer,
    PointerChangeSerializer,
    RollbackBodySerializer,
    TransitionRequestBodySerializer,
    TransitionRequestSerializer,
    pointer_change_to_dict,
    transition_request_to_dict,
)
from .services import (
    alias_rollback,
    transition_request_approve,
    transition_request_create,
    transition_request_override_quality,
    transition_request_reject,
    transition_request_withdraw,
)

TRANSITION_REQUEST_SCHEMA = TransitionRequestSerializer


@documented(
    summary="Ask to move a version to a stage, or to point an alias at it (applied at once when no approval is needed)",
    request=TransitionRequestBodySerializer,
    responses={201: TRANSITION_REQUEST_SCHEMA},
    errors=[400, 403, 404, 409, 415],
)
@api_view(["POST"])
def transition_request_collection(request, name: str, number: int):
    model = get_model_for(request.user, name, Action.REQUEST_TRANSITION)  # authorized before the body is read
    version = version_or_404(model, number)

    def create():
        body = validated_body(TransitionRequestBodySerializer, request)
        justification = body["comment"] or body["justification"]
        if body["alias"] and body["to_stage"]:
            raise ValidationError({"alias": ["Give either 'to_stage' or 'alias', not both."]})
        return transition_request_create(
            version=version, to_stage=body["to_stage"], alias=body["alias"], actor=request.user, justification=justification
        )

    return idempotent_response(
        request,
        create,
        status=201,
        render=lambda created: transition_request_to_dict(transition_request_for(request.user, created.pk)),
    )


@documented(summary="Read a transition request", responses={200: TRANSITION_REQUEST_SCHEMA}, errors=[404])
@api_view(["GET"])
def transition_request_detail(request, pk: int):
    return Response(transition_request_to_dict(transition_request_for(request.user, pk)))


def _decision(service, summary: str, action: str, body: type[serializers.Serializer] | None = None):
    @documented(
        summary=summary,
        request=body,
        responses={200: TRANSITION_REQUEST_SCHEMA},
        errors=[400, 403, 404, 409, 415],
    )
    @api_view(["POST"])
    def view(request, pk: int):
        target = transition_request_for(request.user, pk)
        require(request.user, action, target.version.model)  # before the body is read; the service checks again
        return idempotent_response(
            request,
            lambda: service(transition_request=target, actor=request.user, **(validated_body(body, request) if body else {})),
            status=200,
            render=lambda _: transition_request_to_dict(transition_request_for(request.user, pk)),
        )

    return view


approve = _decision(
    transition_request_approve, "Approve a pending request (reviewers other than the requester)", Action.APPROVE_TRANSITION, DecisionBodySerializer
)
reject = _decision(transition_request_reject, "Reject a pending request", Action.APPROVE_TRANSITION, DecisionBodySerializer)
withdraw = _decision(transition_request_withdraw, "Withdraw your own pending request", Action.VIEW)
override_quality = _decision(
    transition_request_override_quality, "Override a failed quality gate (managers)", Action.MANAGE, OverrideQualityBodySerializer
)


@documented(
    summary="Roll production back to the previous production version, or a chosen earlier one",
    request=RollbackBodySerializer,
    responses={201: PointerChangeSerializer},
    errors=[400, 403, 404, 409, 415],
)
@api_view(["POST"])
def rollback(request, name: str):
    return rollback_response(request, get_model_for(request.user, name), PRODUCTION_ALIAS)


def rollback_response(request, model, alias: str):
    """POST .../rollback/ for any pointer (production's and each alias's endpoint): `alias_rollback`, idempotent."""
    require_rollback(request.user, model)  # before the body is read

    def roll_back():
        body = validated_body(RollbackBodySerializer, request)
        target = version_or_404(model, body["to_version"]) if body["to_version"] is not None else None
        return alias_rollback(model=model, alias=alias, actor=request.user, reason=body["reason"], to_version=target)

    return idempotent_response(request, roll_back, status=201, render=pointer_change_to_dict)


@documented(
    summary="The production pointer's history, newest first, a page at a time (follow `next`), or (with ?at=) the version in production at an instant",
    parameters=[OpenApiParameter("at", OpenApiTypes.DATETIME, description="ISO 8601 instant with a time zone."), *cursor_parameters()],
    responses={
        200: PolymorphicProxySerializer(
            component_name="ProductionHistoryAnswer",
            serializers=[
                inline_serializer(
                    name="ProductionHistory",
                    fields={
                        "model": serializers.CharField(),
                        "history": PointerChangeSerializer(many=True),
                        "next": serializers.URLField(allow_null=True),
                        "previous": serializers.URLField(allow_null=True),
                    },
                ),
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
    when = instant_parameter(request)
    if when is not None:
        version = production_at(model, when)
        return Response({"at": when.isoformat(), "version": version.number if version else None})
    history, links = cursor_page(request, production_history(model), key="id", descending=True)
    return Response({"model": model.name, "history": PointerChangeSerializer(history, many=True).data, **links})
