"""A version's signed manifests (API) and the public keys that verify them (a well-known URL anyone may read)."""

import django_filters
from django.http import JsonResponse
from django.views.decorators.http import require_GET
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from apps.models.permissions import get_model_for
from apps.versions.selectors import version_or_404
from apps.web.errors import error_body
from apps.web.lists import paginated
from apps.web.openapi import documented, filter_parameters, page_schema

from .keys import KeyStatus, published_keys
from .models import ManifestSignature
from .selectors import signature_summary
from .services import envelope

SIGNATURE_SCHEMA = inline_serializer(
    name="SignedManifest",
    fields={
        "pointer": serializers.CharField(help_text='"production" or "@alias"'),
        "key_id": serializers.CharField(),
        "key_status": serializers.ChoiceField(choices=KeyStatus.values),
        "signed_at": serializers.DateTimeField(),
        "approved_by": serializers.ListField(child=serializers.CharField()),
        "statement": serializers.DictField(help_text="The signed payload, decoded: the manifest, pointer, approvals, time and key id."),
        "envelope": serializers.DictField(help_text="The DSSE envelope: payloadType, payload (base64), signatures [{keyid, sig}]."),
    },
)


class SignatureFilter(django_filters.FilterSet):
    pointer = django_filters.CharFilter(help_text='Only those for this pointer: "production" or "@alias".')
    key_id = django_filters.CharFilter(help_text="Only those made with this key.")
    ordering = django_filters.OrderingFilter(fields=(("signed_at", "signed"),), help_text="signed; '-' for descending (the default: newest first).")

    class Meta:
        model = ManifestSignature
        fields = []


@documented(
    summary="The signed manifests of a version (one per entry into production or a governed alias), newest first",
    parameters=filter_parameters(SignatureFilter),
    responses={200: page_schema(SIGNATURE_SCHEMA, "SignedManifest")},
    errors=[400, 404],
)
@api_view(["GET"])
def version_signatures(request, name: str, number: int) -> Response:
    version = version_or_404(get_model_for(request.user, name), number)
    return paginated(
        request, ManifestSignature.objects.filter(version=version), lambda row: {**signature_summary(row), "envelope": envelope(row)},
        filterset_class=SignatureFilter,
    )


@require_GET
def public_keys(request) -> JsonResponse:
    """Every key whose signatures verify, active and retired, by key id. Public keys: no login needed."""
    keys = published_keys()
    if not keys:
        return JsonResponse(error_body("not_found", "This registry signs no manifests: no signing key is configured."), status=404)
    return JsonResponse({"keys": [key.as_dict() for key in keys]}, headers={"Cache-Control": "public, max-age=300"})
