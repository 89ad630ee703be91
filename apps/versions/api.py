import hashlib

import orjson
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, HttpResponseNotModified
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from apps.accounts.idempotency import idempotent_call
from apps.catalog.selectors import number_fingerprint, row_fingerprint, stage_fingerprint, version_page_details, version_rows, versions_with_details
from apps.catalog.services import version_register
from apps.lineage.services import parents_resolve
from apps.web.lists import paginated
from apps.web.rawsql import aware
from apps.web.openapi import documented, filter_parameters, page_schema
from apps.web.serializers import StrictSerializer, validated_body
from apps.models.permissions import Action, get_model_for

from .document import DocumentSerializer, Tags, Text, VersionMetadata, metadata_from_dict, metadata_from_json
from .downloads import artifact_response, etag_matches
from .lifecycle import Stage
from . import openapi  # noqa: F401 (registers the schema of the document's custom fields)
from .filters import VersionFilter
from .models import ModelVersion
from .rendering import json_bytes, json_response, versions_rendered
from .selectors import artifact_or_404, version_or_404
from .serializers import DeploymentReportBodySerializer, VersionSerializer, version_to_dict
from .services import IncomingFile, deployment_report, incoming_from_upload, version_update

VERSION_SCHEMA = VersionSerializer
VERSION_JSON_SECONDS = 3600  # how long a version's JSON stays cached under one fingerprint


def _metadata_text(request) -> str:
    if "metadata" in request.FILES:
        # Read one byte past the limit: enough for the size check, never the whole of a huge part.
        return request.FILES["metadata"].read(settings.METADATA_MAX_BYTES + 1)
    return request.data.get("metadata") or "{}"


@documented(
    methods=["GET"],
    summary="List a model's versions",
    operation_id="models_versions_list",
    description=(
        "Newest first unless `ordering` says otherwise. Metric ranges: `metric.<name>__gte`, `__gt`, `__lte`, `__lt` "
        "(e.g. `metric.accuracy__gte=0.9&metric.loss__lt=0.2`); versions without that metric never match. "
        "Unknown parameters and bad values answer 400 naming the parameter. "
        "Ordered by number (the default), `next` and `previous` are `cursor` links: every page costs the same however deep; "
        "`page` still pages by number when sent."
    ),
    parameters=[
        *filter_parameters(VersionFilter),
        OpenApiParameter("cursor", str, description="Where a page starts, from a `next` or `previous` link (ordering by number only)."),
    ],
    responses={200: page_schema(VERSION_SCHEMA, "ModelVersion")},
    errors=[400, 404],
)
@documented(
    methods=["POST"],
    summary="Register a version (multipart: `files` parts and a `metadata` JSON part)",
    request={"multipart/form-data": OpenApiTypes.OBJECT},
    responses={201: VERSION_SCHEMA},
    errors=[400, 403, 404, 409, 413, 415, 507],
)
@api_view(["GET", "POST"])
def versions_collection(request, name: str):
    if request.method == "GET":
        model = get_model_for(request.user, name)
        rows = version_rows(ModelVersion.objects.filter(model=model).order_by("-number"))
        ordering = request.query_params.get("ordering", "-number")
        keyset = ("number", ordering.startswith("-")) if ordering.removeprefix("-") == "number" else None
        page = paginated(request, rows, filterset_class=VersionFilter, render_page=lambda page: _listed(page, request), keyset=keyset)
        return json_response(page.data)

    model = get_model_for(request.user, name, Action.REGISTER)
    with idempotent_call(request) as call:  # after authorization, before the body is read
        if call.replayed is not None:
            return call.replayed
        metadata, files = _registration(request)
        version_register(
            model=model,
            files=files,
            metadata=metadata,
            actor=request.user,
            before_commit=lambda version: call.record(status=status.HTTP_201_CREATED, body=_registered_to_dict(version, request)),
        )
        return call.respond()


@documented(
    summary="Check a metadata document before uploading (what the CLI does first): 200 if a registration would accept it",
    request=DocumentSerializer,
    responses={200: inline_serializer(name="MetadataCheck", fields={"valid": serializers.BooleanField()})},
    errors=[400, 403, 404, 415],
)
@api_view(["POST"])
def version_metadata_check(request, name: str):
    """The registration's metadata checks, parents included, without files: refusals before any byte is uploaded."""
    model = get_model_for(request.user, name, Action.REGISTER)  # before the body is read
    metadata = metadata_from_dict(request.data)
    parents_resolve(actor=request.user, model=model, declared=metadata.parents)
    return Response({"valid": True})


def _rendered(rows, request) -> list[dict]:
    """The version JSON of `version_rows` rows: what `version_to_dict` writes, one query per relation for them all."""
    rows = list(rows)
    return versions_rendered(rows, version_page_details(rows), request)


def _registration(request) -> tuple[VersionMetadata, list[IncomingFile]]:
    if not hasattr(request.data, "getlist"):
        raise ValidationError({"files": ["Send multipart/form-data with 'files' parts and a 'metadata' JSON part."]})
    metadata = metadata_from_json(_metadata_text(request))
    uploads = request.FILES.getlist("files")
    if len(metadata.artifacts) > len(uploads):
        raise ValidationError({"artifacts": [f"metadata.artifacts lists {len(metadata.artifacts)} files but {len(uploads)} were uploaded."]})
    incoming = []
    for index, upload in enumerate(uploads):
        declared = metadata.artifacts[index] if index < len(metadata.artifacts) else None
        incoming.append(
            incoming_from_upload(upload, path=declared.path if declared else None, declared_sha256=declared.sha256 if declared else None)
        )
    return metadata, incoming


def _registered_to_dict(version: ModelVersion, request) -> dict:
    """The answer to a registration, read inside its transaction: nothing after the commit can fail it."""
    return version_to_dict(versions_with_details(ModelVersion.objects.filter(pk=version.pk)).get(), request)


class VersionUpdateSerializer(StrictSerializer):
    """PATCH of a version: what may change after registration (as on the edit page). Keys left out keep their value."""

    description = Text(help_text="Markdown.")
    tags = Tags(help_text="Replaces the version's tags.")


@documented(
    methods=["GET"],
    summary="Read a version (ETag and If-None-Match give 304)",
    responses={200: VERSION_SCHEMA, 304: OpenApiResponse(description="Not modified since the ETag sent in If-None-Match.")},
    errors=[404],
)
@documented(
    methods=["PATCH"],
    summary="Change a version's description or tags (registrants; audited like the edit page)",
    request=VersionUpdateSerializer,
    responses={200: VERSION_SCHEMA},
    errors=[400, 403, 404, 415],
)
@api_view(["GET", "PATCH"])
def version_detail(request, name: str, number: int):
    if request.method == "PATCH":
        version = version_or_404(get_model_for(request.user, name, Action.REGISTER), number)  # before the body is read
        body = VersionUpdateSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        current = {"description": version.description, "tags": sorted(version.tags.names())}
        version_update(version=version, actor=request.user, **{**current, **body.validated_data})
    fingerprint = number_fingerprint(request.user, name, number)
    if fingerprint is None:
        version_or_404(get_model_for(request.user, name), number)  # 404 naming the model or the version that is missing
        raise Http404(f"Model '{name}' has no version {number}.")
    return version_response(request, fingerprint, revalidate=request.method == "GET")


@documented(
    summary="The version a stage points at (what deployment pipelines poll; ETag and If-None-Match give 304)",
    responses={200: VERSION_SCHEMA, 304: OpenApiResponse(description="Not modified since the ETag sent in If-None-Match.")},
    errors=[404],
)
@api_view(["GET"])
def version_by_stage(request, name: str, stage: str):
    """What deployment pipelines poll: one query decides freshness (see `version_response`)."""
    if stage not in Stage.values:
        raise Http404(f"Unknown stage '{stage}'; use one of {', '.join(Stage.values)}.")
    return pointer_response(request, name, stage_fingerprint(request.user, name, stage), missing=f"Model '{name}' has no version in {stage}.")


def pointer_response(request, name: str, fingerprint: dict | None, *, missing: str) -> HttpResponse:
    """`version_response` for a pointer (a stage or an alias): a 404 saying `missing` when it points nowhere (or the
    model's own 404 when the caller may not view it)."""
    if fingerprint is None:
        get_model_for(request.user, name)  # 404 for a model that does not exist or that the user may not view
        raise Http404(missing)
    return version_response(request, fingerprint)


def version_etag(fingerprint: dict) -> str:
    """The ETag of a version's JSON, from its fingerprint (`apps.catalog.selectors.stage_fingerprint` and its kin, or
    `row_fingerprint` of a listed row: the same ETag whichever read made it)."""
    parts = [fingerprint[key] for key in ("pk", "model_id", "number", "job_id", "job_status", "job_attempts")]
    parts.append(aware(fingerprint["updated_at"]).isoformat())
    return '"' + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:32] + '"'


def _cache_key(request, fingerprint: dict, etag: str) -> str:
    return f"version-json:{fingerprint['pk']}:{etag}:{request.get_host()}:{request.is_secure()}"


def version_response(request, fingerprint: dict, *, revalidate: bool = True) -> HttpResponse:
    """The JSON of the version `fingerprint` names (`apps.catalog.selectors.stage_fingerprint` and its kin) with its ETag, or
    304 when If-None-Match holds that ETag (`revalidate`). Every read of one version answers through here (by number,
    by stage, by alias), so each is one query when the body is cached: the body is cached under the fingerprint, which
    changes whenever the JSON does, and is the same for every way of naming the version (lists share it too)."""
    etag = version_etag(fingerprint)
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if revalidate and etag_matches(request.headers.get("If-None-Match", ""), etag):
        return HttpResponseNotModified(headers=headers)
    cache_key = _cache_key(request, fingerprint, etag)
    body = cache.get(cache_key)
    if body is None:
        body = json_bytes(_rendered(version_rows(ModelVersion.objects.filter(pk=fingerprint["pk"])), request)[0])
        cache.set(cache_key, body, timeout=VERSION_JSON_SECONDS)
    return HttpResponse(body, content_type="application/json", headers=headers)


def _listed(rows, request) -> list:
    """The JSON of a page of `version_rows` rows: each version's cached JSON where the cache holds it under the row's
    fingerprint (as `version_response` stores it), the rest rendered in one query per relation and cached in turn."""
    rows = list(rows)
    keys = [_cache_key(request, fingerprint, version_etag(fingerprint)) for fingerprint in map(row_fingerprint, rows)]
    found = cache.get_many(keys)
    missing = [row for row, key in zip(rows, keys) if key not in found]
    if missing:
        fresh = {row["id"]: json_bytes(item) for row, item in zip(missing, _rendered(missing, request))}
        stored = {key: fresh[row["id"]] for row, key in zip(rows, keys) if row["id"] in fresh}
        cache.set_many(stored, timeout=VERSION_JSON_SECONDS)
        found.update(stored)
    return [orjson.Fragment(found[key]) for key in keys]


@documented(
    summary="Download one artifact file of a version (HEAD, ETag = its SHA-256, If-None-Match, Range on local disk; a presigned redirect on S3)",
    responses={
        (200, "application/octet-stream"): OpenApiTypes.BINARY,
        (206, "application/octet-stream"): OpenApiTypes.BINARY,
        302: OpenApiResponse(description="On S3: the presigned URL; X-Checksum-SHA256 carries the file's SHA-256."),
        304: OpenApiResponse(description="The ETag sent in If-None-Match is the file's."),
    },
    errors=[404, 416],
)
@api_view(["GET", "HEAD"])
def artifact_download(request, name: str, number: int, path: str):
    model = get_model_for(request.user, name)
    return artifact_response(request, artifact_or_404(model, number, path))


@documented(
    summary="Report which version a deployment target (environment) serves",
    request=DeploymentReportBodySerializer,
    responses={
        200: inline_serializer(
            name="DeploymentReport",
            fields={
                "environment": serializers.CharField(), "version": serializers.IntegerField(), "follows": serializers.CharField(),
                "reported_at": serializers.DateTimeField(),
            },
        )
    },
    errors=[400, 403, 404, 415],
)
@api_view(["PUT"])
def deployment_report_view(request, name: str, environment: str):
    """Deployment targets report which version they serve; the model page flags drift from the pointer."""
    model = get_model_for(request.user, name)
    body = validated_body(DeploymentReportBodySerializer, request)
    version = ModelVersion.objects.filter(model=model, number=body["version"]).first()
    if version is None:
        raise ValidationError({"version": [f"Model '{name}' has no version {body['version']}."]})
    follows = body.get("follows") or None
    deployment = deployment_report(model=model, environment=environment, version=version, actor=request.user, follows=follows)
    return Response({
        "environment": deployment.environment, "version": version.number, "follows": deployment.follows,
        "reported_at": deployment.reported_at.isoformat(),
    })
