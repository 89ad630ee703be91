"""The MLflow model-registry REST API (2.0) and the artifact proxy, as the MLflow client calls them.

Every view authenticates with the registry's own tokens (`MLFLOW_TRACKING_TOKEN` is sent as a Bearer header), checks
the token's scope before reading a body, loads models through the one permission helper (hidden models do not
exist: RESOURCE_DOES_NOT_EXIST) and writes through the registry's services. The JSON bodies name the model, so they
are read (Django caps them at DATA_UPLOAD_MAX_MEMORY_SIZE) after authentication and the scope check.
"""

import hashlib
import json

from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.decorators import api_view
from rest_framework.response import Response

from apps.accounts.models import TokenScope
from apps.approvals.models import RequestStatus
from apps.approvals.selectors import transition_request_policy
from apps.approvals.services import alias_delete
from apps.models.models import RegisteredModel
from apps.models.permissions import Action, require_scope
from apps.models.services import model_update
from apps.versions.aliases import canonical_alias_name, checked_alias_name
from apps.versions.selectors import version_at_alias
from apps.versions.services import version_update

from .errors import ErrorCode, error_response, invalid, mlflow_error_handler, not_found
from .rendering import STAGE_FROM_MLFLOW, model_to_dict, version_download_uri, version_to_dict
from .search import max_results, page_offset, page_token, parse_filter, parse_order_by
from .selectors import (
    alias_lookup,
    latest_versions,
    model_aliases,
    model_for,
    models_search,
    version_aliases,
    version_for,
    versions_queryset,
    versions_search,
)
from .services import (
    MLFLOW_ALIAS_REASON,
    alias_point,
    model_key_tag_delete,
    model_key_tag_set,
    registered_model_create,
    version_create_from_source,
    version_key_tag_delete,
    version_key_tag_set,
    version_stage_request,
)

MODELS_PAGE_LIMIT = 1000  # MLflow's SEARCH_REGISTERED_MODEL_MAX_RESULTS_THRESHOLD
VERSIONS_PAGE_LIMIT = 200_000  # MLflow's SEARCH_MODEL_VERSION_MAX_RESULTS_THRESHOLD (accepted; pages hold at most...)
VERSIONS_PAGE_SIZE = 1000  # ...this many, with a next_page_token for the rest


def endpoint(*methods: str):
    """A DRF view answering errors in MLflow's JSON, outside the OpenAPI schema of /api/v1/ (MLflow documents it)."""

    def wrap(func):
        view = extend_schema(exclude=True)(api_view(list(methods))(func))
        view.cls.get_exception_handler = lambda self: mlflow_error_handler
        return login_not_required(view)

    return wrap


def _params(request) -> dict:
    """GET parameters, or the JSON body of the other methods, as {name: value or list}."""
    if request.method == "GET":
        return {key: values if len(values) > 1 or key in ("order_by", "stages") else values[0] for key, values in request.query_params.lists()}
    if not isinstance(request.data, dict):
        raise invalid("Send a JSON object.")
    return request.data


def _text(params: dict, key: str, *, required: bool = True) -> str:
    value = params.get(key)
    if value is None or value == "":
        if required:
            raise invalid(f"Missing value for required parameter '{key}'.")
        return ""
    if not isinstance(value, str):
        raise invalid(f"Parameter '{key}' must be a string.")
    return value


def _list(params: dict, key: str) -> list:
    value = params.get(key) or []
    return value if isinstance(value, list) else [value]


def _models_json(models: list[RegisteredModel]) -> list[dict]:
    """Models with their newest version per stage and their aliases: a fixed number of queries for the whole page."""
    ids = [model.pk for model in models]
    latest = latest_versions(ids)
    on_versions = version_aliases([v for versions in latest.values() for v in versions])
    on_models = model_aliases(ids)
    return [
        model_to_dict(
            model,
            latest=[version_to_dict(v, on_versions.get(v.pk, [])) for v in latest[model.pk]],
            aliases=on_models.get(model.pk, []),
        )
        for model in models
    ]


def _model_json(model: RegisteredModel) -> dict:
    return _models_json([model])[0]


def _version_json(version) -> dict:
    return version_to_dict(version, version_aliases([version]).get(version.pk, []))


def _versions_json(versions) -> list[dict]:
    found = version_aliases(list(versions))
    return [version_to_dict(v, found.get(v.pk, [])) for v in versions]


@endpoint("POST", "DELETE")
def tag_change(request, *, of_version: bool, delete: bool):
    """set-tag (POST) and delete-tag (DELETE) of a model (manage permission, full-scope token) or a version (register permission)."""
    if (request.method == "DELETE") != delete:
        raise exceptions.MethodNotAllowed(request.method)
    scope, action = (TokenScope.REGISTER, Action.REGISTER) if of_version else (TokenScope.FULL, Action.MANAGE)
    require_scope(request.user, scope, "changing tags")  # before the body is read
    params = _params(request)
    key = _text(params, "key")
    if of_version:
        version = version_for(request.user, params.get("name"), params.get("version"), action)
        (version_key_tag_delete if delete else version_key_tag_set)(version=version, key=key, actor=request.user, **({} if delete else {"value": params.get("value")}))
    else:
        model = model_for(request.user, params.get("name"), action)
        (model_key_tag_delete if delete else model_key_tag_set)(model=model, key=key, actor=request.user, **({} if delete else {"value": params.get("value")}))
    return Response({})


# -- registered models ------------------------------------------------------------------------------------------------


@endpoint("POST")
def registered_model_create_view(request):
    require_scope(request.user, TokenScope.FULL, "creating models")  # before the body is read
    params = _params(request)
    tags = [(tag.get("key"), tag.get("value")) if isinstance(tag, dict) else (None, None) for tag in _list(params, "tags")]
    model = registered_model_create(name=_text(params, "name"), description=_text(params, "description", required=False), tags=tags, actor=request.user)
    return Response({"registered_model": _model_json(model_for(request.user, model.name))})


@endpoint("GET")
def registered_model_get(request):
    return Response({"registered_model": _model_json(model_for(request.user, request.query_params.get("name")))})


@endpoint("GET")
def registered_model_search(request):
    params = request.query_params
    limit = max_results(params.get("max_results"), default=100, limit=MODELS_PAGE_LIMIT)
    offset = page_offset(params.get("page_token"))
    models, more = models_search(
        request.user,
        clauses=parse_filter(params.get("filter"), for_models=True),
        order=parse_order_by(params.getlist("order_by"), for_models=True),
        offset=offset,
        limit=limit,
    )
    body = {"registered_models": _models_json(models)}
    if more:
        body["next_page_token"] = page_token(offset + limit)
    return Response(body)


@endpoint("PATCH")
def registered_model_update(request):
    require_scope(request.user, TokenScope.FULL, "changing models")
    params = _params(request)
    model = model_for(request.user, params.get("name"), Action.MANAGE)
    description = _text(params, "description", required=False)
    model_update(model=model, actor=request.user, description=description, team=model.team, tags=list(model.tags.names()))
    return Response({"registered_model": _model_json(model_for(request.user, model.name))})


@endpoint("POST", "GET")
def latest_versions_view(request):
    params = _params(request)
    model = model_for(request.user, params.get("name"))
    stages = None
    if _list(params, "stages"):
        unknown = [s for s in _list(params, "stages") if not isinstance(s, str) or s.lower() not in STAGE_FROM_MLFLOW]
        if unknown:
            raise invalid(f"Unknown stage(s) {unknown}; use None, Staging, Production or Archived.")
        stages = [STAGE_FROM_MLFLOW[s.lower()] for s in _list(params, "stages")]
    return Response({"model_versions": _versions_json(latest_versions([model.pk], stages)[model.pk])})


# -- model versions ---------------------------------------------------------------------------------------------------


@endpoint("POST")
def model_version_create(request):
    require_scope(request.user, TokenScope.REGISTER, "registering versions")  # before the body is read
    params = _params(request)
    model = model_for(request.user, params.get("name"), Action.REGISTER)
    tags = [(tag.get("key"), tag.get("value")) if isinstance(tag, dict) else (None, None) for tag in _list(params, "tags")]
    version = version_create_from_source(
        model=model,
        source=_text(params, "source"),
        actor=request.user,
        description=_text(params, "description", required=False),
        run_id=_text(params, "run_id", required=False),
        run_link=_text(params, "run_link", required=False),
        tags=tags,
    )
    return Response({"model_version": _version_json(version_for(request.user, model.name, version.number))})


@endpoint("GET")
def model_version_get(request):
    params = request.query_params
    return Response({"model_version": _version_json(version_for(request.user, params.get("name"), params.get("version")))})


@endpoint("GET")
def model_version_search(request):
    params = request.query_params
    limit = max_results(params.get("max_results"), default=10_000, limit=VERSIONS_PAGE_LIMIT)
    page = min(limit, VERSIONS_PAGE_SIZE)
    offset = page_offset(params.get("page_token"))
    versions, more = versions_search(
        request.user, clauses=parse_filter(params.get("filter")), order=parse_order_by(params.getlist("order_by")), offset=offset, limit=page
    )
    body = {"model_versions": _versions_json(versions)}
    if more:
        body["next_page_token"] = page_token(offset + page)
    return Response(body)


@endpoint("PATCH")
def model_version_update(request):
    require_scope(request.user, TokenScope.REGISTER, "changing versions")
    params = _params(request)
    version = version_for(request.user, params.get("name"), params.get("version"), Action.REGISTER)
    version_update(version=version, actor=request.user, description=_text(params, "description", required=False), tags=list(version.tags.names()))
    return Response({"model_version": _version_json(version_for(request.user, version.model.name, version.number))})


@endpoint("GET")
def model_version_download_uri(request):
    params = request.query_params
    version = version_for(request.user, params.get("name"), params.get("version"))
    return Response({"artifact_uri": version_download_uri(version.model.name, version.number)})


@endpoint("POST")
def model_version_transition_stage(request):
    """A move the model's policy lets through is applied; one that needs approval opens (or finds) a transition
    request and answers PERMISSION_DENIED naming it: the version does not move until reviewers approve."""
    require_scope(request.user, TokenScope.FULL, "requesting stage transitions")
    params = _params(request)
    version = version_for(request.user, params.get("name"), params.get("version"), Action.REQUEST_TRANSITION)
    stage = _text(params, "stage")
    transition_request = version_stage_request(
        version=version, stage=stage, actor=request.user, archive_existing=bool(params.get("archive_existing_versions"))
    )
    if transition_request is not None and transition_request.status == RequestStatus.PENDING:
        return _awaiting_review(request, version, f"version {version.number} of '{version.model.name}' to {stage}", transition_request)
    return Response({"model_version": _version_json(version_for(request.user, version.model.name, version.number))})


def _awaiting_review(request, version, move: str, transition_request) -> Response:
    """PERMISSION_DENIED naming the transition request a move waits for: nothing moved, reviewers decide."""
    required, _ = transition_request_policy(transition_request)
    review = request.build_absolute_uri(reverse("approvals:review", args=[transition_request.pk]))
    return error_response(
        ErrorCode.PERMISSION_DENIED,
        f"Moving {move} needs {required} approval(s): transition request "
        f"#{transition_request.pk} is open and waits for reviewers ({review}). Nothing moves until it is approved; nothing "
        "else is needed from you.",
    )


# -- aliases ----------------------------------------------------------------------------------------------------------


@endpoint("GET", "POST", "DELETE")
def registered_model_alias(request):
    """GET: the version an alias points at (the hot path: one query decides, the JSON is cached). POST: point it
    (a governed alias opens a transition request instead). DELETE: remove it (alias_delete's rules)."""
    if request.method == "GET":
        return _alias_version(request, request.query_params.get("name"), request.query_params.get("alias"))
    require_scope(request.user, TokenScope.FULL, "moving aliases")  # before the body is read
    params = _params(request)
    alias = _text(params, "alias")
    if request.method == "DELETE":
        model = model_for(request.user, params.get("name"))
        alias = checked_alias_name(alias)
        if version_at_alias(model, alias) is None:
            raise not_found(f"Registered model alias {alias} not found.")
        alias_delete(model=model, alias=alias, actor=request.user, reason=MLFLOW_ALIAS_REASON)
        return Response({})
    version = version_for(request.user, params.get("name"), params.get("version"))
    transition_request = alias_point(model=version.model, alias=alias, version=version, actor=request.user)
    if transition_request is not None and transition_request.status == RequestStatus.PENDING:
        move = f"@{checked_alias_name(alias)} of '{version.model.name}' to version {version.number}"
        return _awaiting_review(request, version, move, transition_request)
    return Response({})


def _alias_version(request, name, alias) -> HttpResponse:
    if not isinstance(name, str) or not name or not isinstance(alias, str) or not alias:
        raise invalid("Send the registered model's 'name' and the 'alias'.")
    alias = canonical_alias_name(alias)
    found = alias_lookup(request.user, name, alias)
    if found is None:
        model_for(request.user, name)  # RESOURCE_DOES_NOT_EXIST for a model that is absent or hidden
        raise not_found(f"Registered model alias {alias} not found.")
    key = "mlflow-alias:" + hashlib.sha256(repr(sorted(found.items())).encode()).hexdigest()[:32]
    body = cache.get(key)
    if body is None:
        version = versions_queryset().get(pk=found["pk"])
        body = json.dumps({"model_version": _version_json(version)})
        cache.set(key, body, timeout=3600)
    return HttpResponse(body, content_type="application/json")


# -- the rest ---------------------------------------------------------------------------------------------------------


@endpoint("GET")
def server_info(request):
    return Response({"store_type": "ModelRegistry", "workspaces_enabled": False, "trace_archival_enabled": False,
                     "multipart_uploads_enabled": False, "multipart_downloads_enabled": False})


@endpoint("GET", "POST", "PUT", "PATCH", "DELETE")
def not_served(request, rest: str = ""):
    return error_response(
        ErrorCode.ENDPOINT_NOT_FOUND,
        f"{request.method} {request.path} is not served: this registry answers the MLflow model-registry API (registered "
        "models, model versions, aliases, stages) and the artifact proxy; runs, experiments, traces and the other tracking "
        "endpoints are out of scope (see the README, 'Using the MLflow client').",
    )
