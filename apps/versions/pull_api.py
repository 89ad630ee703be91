"""Whole-version reads for deployers: the manifest (what `model-registry pull` fetches first) and the archive.

Each is served by version number, by stage and by alias, all through `get_model_for`,
like every read: a model the caller may not view is a 404.
"""

from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponseNotModified
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response

from apps.models.permissions import get_model_for
from apps.web.openapi import documented

from .aliases import alias_from_url
from .archive import ArchiveFormat
from .downloads import archive_response, etag_matches
from .manifest import manifest_etag, version_manifest
from .selectors import version_at_alias, version_in_stage_or_404, version_or_404

MANIFEST_SCHEMA = inline_serializer(
    name="VersionManifest",
    fields={
        "model": serializers.CharField(),
        "version": serializers.IntegerField(),
        "version_id": serializers.UUIDField(),
        "files": inline_serializer(
            name="ManifestFile",
            many=True,
            fields={"path": serializers.CharField(), "size": serializers.IntegerField(), "sha256": serializers.CharField()},
        ),
    },
)
NOT_MODIFIED = OpenApiResponse(description="The ETag sent in If-None-Match still names these files.")
FORMAT_PARAMETER = OpenApiParameter("format", str, enum=ArchiveFormat.values, description="zip (the default) or tar.")


class FormatIsTheArchives(DefaultContentNegotiation):
    """`?format=` picks the archive format here, not one of DRF's renderers (errors are JSON as everywhere)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _archive_format(request) -> ArchiveFormat:
    value = request.query_params.get("format", ArchiveFormat.ZIP)
    if value not in ArchiveFormat.values:
        raise ValidationError({"format": [f"Unknown archive format '{value}'; use format=zip or format=tar."]})
    return ArchiveFormat(value)


def _by_number(request, name: str, number: int):
    return version_or_404(get_model_for(request.user, name), number)


def _by_stage(request, name: str, stage: str):
    return version_in_stage_or_404(get_model_for(request.user, name), stage)


def _by_alias(request, name: str, alias: str):
    model = get_model_for(request.user, name)
    alias = alias_from_url(alias)
    version = version_at_alias(model, alias)
    if version is None:
        raise Http404(f"Model '{name}' has no alias '{alias}' pointing at a version.")
    version.model = model
    return version


def _revalidation_headers(manifest: dict, variant: str = "") -> dict:
    """A deployer polling an alias or stage gets 304 until it points at other files (the permission is checked each time)."""
    return {"ETag": manifest_etag(manifest, variant), "Cache-Control": "private, no-cache"}


def _manifest_view(resolve, summary: str):
    @documented(summary=summary, responses={200: MANIFEST_SCHEMA, 304: NOT_MODIFIED}, errors=[404])
    @api_view(["GET"])
    def view(request, name: str, **lookup):
        manifest = version_manifest(resolve(request, name, **lookup))
        headers = _revalidation_headers(manifest)
        if etag_matches(request.headers.get("If-None-Match", ""), headers["ETag"]):
            return HttpResponseNotModified(headers=headers)
        return Response(manifest, headers=headers)

    return view


def _archive_view(resolve, summary: str):
    def view(request, name: str, **lookup):
        archive_format = _archive_format(request)
        manifest = version_manifest(resolve(request, name, **lookup))
        headers = _revalidation_headers(manifest, archive_format)
        if etag_matches(request.headers.get("If-None-Match", ""), headers["ETag"]):
            return HttpResponseNotModified(headers=headers)
        response = archive_response(manifest, archive_format)
        response["ETag"] = headers["ETag"]
        return response

    view.content_negotiation_class = FormatIsTheArchives
    return documented(
        summary=summary,
        parameters=[FORMAT_PARAMETER],
        responses={
            (200, "application/zip"): OpenApiTypes.BINARY,
            (200, "application/x-tar"): OpenApiTypes.BINARY,
            304: NOT_MODIFIED,
        },
        errors=[400, 404],
    )(api_view(["GET"])(view))


manifest_by_number = _manifest_view(_by_number, "A version's manifest: every file's path, size and SHA-256 (what `pull` fetches first)")
manifest_by_stage = _manifest_view(_by_stage, "The manifest of the version a stage points at")
archive_by_number = _archive_view(
    _by_number, "A whole version as one streamed zip (or tar with format=tar): every file under its path, plus MANIFEST.json"
)
archive_by_stage = _archive_view(_by_stage, "The whole version a stage points at, as one streamed zip or tar")
manifest_by_alias = _manifest_view(_by_alias, "The manifest of the version an alias points at (`production` included)")
archive_by_alias = _archive_view(_by_alias, "The whole version an alias points at, as one streamed zip or tar")
