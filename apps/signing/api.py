"""A version's signed manifests (API) and the public keys that verify them (a well-known URL anyone may read)."""

from django.http import JsonResponse
from django.views.decorators.http import require_GET
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from apps.models.permissions import get_model_for
from apps.versions.selectors import version_or_404
from apps.web.errors import error_body
from apps.web.openapi import documented

from .keys import published_keys
from .selectors import signature_summary, signatures_of
from .services import envelope

SIGNATURE_SCHEMA = inline_serializer(
    name="SignedManifest",
    fields={
        "pointer": serializers.CharField(help_text='"production" or "@alias"'),
        "key_id": serializers.CharField(),
        "key_status": serializers.ChoiceField(choices=["active", "retired", "unknown"]),
        "signed_at": serializers.DateTimeField(),
        "approved_by": serializers.ListField(child=serializers.CharField()),
        "statement": serializers.DictField(help_text="The signed payload, decoded: the manifest, pointer, approvals, time and key id."),
        "envelope": serializers.DictField(help_text="The DSSE envelope: payloadType, payload (base64), signatures [{keyid, sig}]."),
    },
)


@documented(
    summary="The signed manifests of a version (one per entry into production or a governed alias), newest first",
    parameters=[OpenApiParameter("pointer", str, description='Only those for this pointer: "production" or "@alias".')],
    responses={200: inline_serializer(name="SignedManifests", fields={"count": serializers.IntegerField(), "results": SIGNATURE_SCHEMA})},
    errors=[404],
)
@api_view(["GET"])
def version_signatures(request, name: str, number: int) -> Response:
    version = version_or_404(get_model_for(request.user, name), number)
    pointer = request.query_params.get("pointer") or None
    rows = signatures_of(version, pointer=pointer)
    return Response({"count": len(rows), "results": [{**signature_summary(row), "envelope": envelope(row)} for row in rows]})


@require_GET
def public_keys(request) -> JsonResponse:
    """Every key whose signatures verify, active and retired, by key id. Public keys: no login needed."""
    keys = published_keys()
    if not keys:
        return JsonResponse(error_body("not_found", "This registry signs no manifests: no signing key is configured."), status=404)
    return JsonResponse({"keys": [key.as_dict() for key in keys]}, headers={"Cache-Control": "public, max-age=300"})
