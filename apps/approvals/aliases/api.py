"""The aliases API: read an alias's version (ETag/304, like the stage lookup), list, set/move, delete, its policy,
its history (and ?at=), rollback. Every write goes through the approvals services (`version_transition`)."""

import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from apps.catalog.selectors import alias_fingerprint, stage_fingerprint
from apps.models.permissions import Action, get_model_for
from apps.versions.aliases import PRODUCTION_ALIAS, alias_from_url
from apps.versions.api import VERSION_SCHEMA, pointer_response
from apps.versions.models import ModelAlias
from apps.versions.selectors import alias_at, alias_history, alias_pointer, version_or_404
from apps.web.errors import error_body
from apps.web.lists import cursor_page, paginated
from apps.web.serializers import instant_parameter, validated_body
from apps.web.openapi import cursor_parameters, documented, filter_parameters, page_schema

from ..api import rollback_response
from ..selectors import alias_policies, alias_policy
from ..serializers import PointerChangeSerializer, RollbackBodySerializer
from ..services import ApprovalRequired, alias_delete, alias_policy_update, alias_set
from .serializers import AliasDeleteBodySerializer, AliasPolicyBodySerializer, AliasPolicySerializer, AliasSerializer, AliasSetBodySerializer, alias_to_dict, policy_to_dict


class AliasFilter(django_filters.FilterSet):
    search = django_filters.CharFilter(field_name="name", lookup_expr="icontains", help_text="Part of the alias's name.")
    ordering = django_filters.OrderingFilter(
        fields=(("name", "name"), ("updated_at", "updated"), ("version__number", "version")), help_text="name, updated or version; '-' for descending."
    )

    class Meta:
        model = ModelAlias
        fields = []


@documented(
    summary="List a model's free aliases with their versions and policies (`production` is built in: read it by name)",
    operation_id="models_aliases_list",
    parameters=filter_parameters(AliasFilter),
    responses={200: page_schema(AliasSerializer, "Alias")},
    errors=[400, 404],
)
@api_view(["GET"])
def alias_collection(request, name: str):
    model = get_model_for(request.user, name)

    def render_page(rows) -> list[dict]:
        policies = alias_policies(model, [row.name for row in rows])
        return [alias_to_dict(row.name, row.version, row.updated_at, policies[row.name]) for row in rows]

    queryset = ModelAlias.objects.filter(model=model).select_related("version").order_by("name")
    return paginated(request, queryset, filterset_class=AliasFilter, render_page=render_page)


@documented(
    methods=["GET"],
    summary="The version an alias points at (what deployment pipelines poll; ETag and If-None-Match give 304)",
    responses={200: VERSION_SCHEMA, 304: OpenApiResponse(description="Not modified since the ETag sent in If-None-Match.")},
    errors=[404],
)
@documented(
    methods=["PUT"],
    summary="Point an alias at a version (set or move). A governed alias answers 409 naming the transition request to open",
    request=AliasSetBodySerializer,
    responses={200: AliasSerializer},
    errors=[400, 403, 404, 409, 415],
)
@documented(
    methods=["DELETE"],
    summary="Delete an alias (a governed one: managers; `production`: take it down under production's rules, else 409)",
    request=AliasDeleteBodySerializer,
    responses={204: None},
    errors=[400, 403, 404, 409, 415],
)
@api_view(["GET", "PUT", "DELETE"])
def alias_detail(request, name: str, alias: str):
    alias = alias_from_url(alias)
    if request.method == "GET":
        if alias == PRODUCTION_ALIAS:
            fingerprint = stage_fingerprint(request.user, name, PRODUCTION_ALIAS)
        else:
            fingerprint = alias_fingerprint(request.user, name, alias)
        return pointer_response(request, name, fingerprint, missing=f"Model '{name}' has no alias '{alias}'.")
    model = get_model_for(request.user, name, Action.REQUEST_TRANSITION)  # authorized before the body is read
    try:
        if request.method == "DELETE":
            body = AliasDeleteBodySerializer(data=request.data or {})
            body.is_valid(raise_exception=True)
            alias_delete(model=model, alias=alias, actor=request.user, reason=body.validated_data["comment"])
            return Response(status=status.HTTP_204_NO_CONTENT)
        body = validated_body(AliasSetBodySerializer, request)
        version = version_or_404(model, body["version"])
        alias_set(model=model, alias=alias, version=version, actor=request.user, reason=body["comment"])
    except ApprovalRequired as exc:  # a governed move: name the request to open, never a bypass
        return Response(error_body("approval_required", " ".join(exc.messages)), status=status.HTTP_409_CONFLICT)
    return Response(alias_to_dict(alias, *alias_pointer(model, alias), alias_policy(model, alias)))


@documented(methods=["GET"], summary="How an alias is governed", responses={200: AliasPolicySerializer}, errors=[404])
@documented(
    methods=["PUT"],
    summary="Set how an alias is governed (managers): approvals, approver group, gates",
    request=AliasPolicyBodySerializer,
    responses={200: AliasPolicySerializer},
    errors=[400, 403, 404, 415],
)
@api_view(["GET", "PUT"])
def alias_policy_detail(request, name: str, alias: str):
    alias = alias_from_url(alias)
    if request.method == "GET":
        return Response(policy_to_dict(alias_policy(get_model_for(request.user, name), alias)))
    model = get_model_for(request.user, name, Action.MANAGE)  # before the body is read
    body = validated_body(AliasPolicyBodySerializer, request)
    rules = alias_policy_update(
        model=model,
        alias=alias,
        actor=request.user,
        required_approvals=body["required_approvals"],
        approver_group=body.get("approver_group"),
        gates=body["gates"],
    )
    return Response(policy_to_dict(rules))


@documented(
    summary="An alias's history, newest first, a page at a time (follow `next`), or (with ?at=) the version it pointed at, at an instant",
    parameters=[
        OpenApiParameter("at", OpenApiTypes.DATETIME, description="ISO 8601 instant with a time zone."),
        *cursor_parameters(),
    ],
    responses={
        200: PolymorphicProxySerializer(
            component_name="AliasHistoryAnswer",
            serializers=[
                inline_serializer(
                    name="AliasHistory",
                    fields={
                        "model": serializers.CharField(),
                        "alias": serializers.CharField(),
                        "history": PointerChangeSerializer(many=True),
                        "next": serializers.URLField(allow_null=True),
                        "previous": serializers.URLField(allow_null=True),
                    },
                ),
                inline_serializer(
                    name="AliasAt",
                    fields={"alias": serializers.CharField(), "at": serializers.DateTimeField(), "version": serializers.IntegerField(allow_null=True)},
                ),
            ],
            resource_type_field_name=None,
        )
    },
    errors=[400, 404],
)
@api_view(["GET"])
def alias_history_view(request, name: str, alias: str):
    alias = alias_from_url(alias)
    model = get_model_for(request.user, name)
    when = instant_parameter(request)
    if when is not None:
        version = alias_at(model, alias, when)
        return Response({"alias": alias, "at": when.isoformat(), "version": version.number if version else None})
    history, links = cursor_page(request, alias_history(model, alias), key="id", descending=True)
    return Response({"model": model.name, "alias": alias, "history": PointerChangeSerializer(history, many=True).data, **links})


@documented(
    summary="Point an alias back at a version it pointed at before (the previous one by default); approvers and managers",
    request=RollbackBodySerializer,
    responses={201: PointerChangeSerializer},
    errors=[400, 403, 404, 409, 415],
)
@api_view(["POST"])
def alias_rollback_view(request, name: str, alias: str):
    alias = alias_from_url(alias)
    return rollback_response(request, get_model_for(request.user, name), alias)
