from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.exceptions import PermissionDenied

from apps.models.permissions import token_limits_models, visible_models
from apps.models.selectors import audit_entries_for_listing
from apps.web.lists import paginated
from apps.web.openapi import documented, filter_parameters, page_schema

from .filters import AuditEntryFilter
from .models import AuditEntry
from .permissions import is_auditor


def entry_to_dict(entry: AuditEntry) -> dict:
    return {
        "sequence": entry.sequence,
        "created_at": entry.created_at.isoformat(),
        "actor": entry.actor_name,
        "action": entry.action,
        "object_type": f"{entry.object_type.app_label}.{entry.object_type.model}",
        "object_id": entry.object_id,
        "object_repr": entry.object_repr,
        "model": entry.model_name,
        "before": entry.before,
        "after": entry.after,
        "request_id": entry.request_id,
        "entry_hash": entry.entry_hash,
    }


class AuditEntrySerializer(serializers.Serializer):
    """One audit entry as `entry_to_dict` renders it."""

    sequence = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    actor = serializers.CharField()
    action = serializers.CharField()
    object_type = serializers.CharField()
    object_id = serializers.CharField()
    object_repr = serializers.CharField()
    model = serializers.CharField(allow_blank=True, allow_null=True)
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)
    request_id = serializers.CharField(allow_blank=True, allow_null=True)
    entry_hash = serializers.CharField()


@documented(
    summary="Read the audit log (auditors)",
    parameters=filter_parameters(AuditEntryFilter),
    responses={200: page_schema(AuditEntrySerializer, "AuditEntry")},
    errors=[400, 403],
)
@api_view(["GET"])
def audit_entries(request):
    """The whole audit log, newest first, for auditors. Filters: action, actor, model, since, until (dates), q."""
    if not is_auditor(request.user):
        raise PermissionDenied("Only auditors may read the audit log.")
    entries = audit_entries_for_listing()
    if token_limits_models(request.user):
        # A token limited to chosen models reads only their entries, as it sees only them everywhere else.
        entries = entries.filter(registered_model_id__in=visible_models(request.user).values("pk"))
    return paginated(request, entries, entry_to_dict, filterset_class=AuditEntryFilter)
