from rest_framework.decorators import api_view
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.pagination import PageNumberPagination

from apps.models.permissions import token_limits_models, visible_models

from .filters import AuditEntryFilter
from .models import AuditEntry
from .permissions import is_auditor
from .selectors import entries_for_listing


class Pages(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


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


@api_view(["GET"])
def audit_entries(request):
    """The whole audit log, newest first, for auditors. Filters: action, actor, model, since, until (dates), q."""
    if not is_auditor(request.user):
        raise PermissionDenied("Only auditors may read the audit log.")
    entries = entries_for_listing()
    if token_limits_models(request.user):
        # A token limited to chosen models reads only their entries, as it sees only them everywhere else.
        entries = entries.filter(registered_model_id__in=visible_models(request.user).values("pk"))
    filterset = AuditEntryFilter(request.query_params, queryset=entries)
    if not filterset.is_valid():
        raise ValidationError(filterset.errors)
    paginator = Pages()
    page = paginator.paginate_queryset(filterset.qs, request)
    return paginator.get_paginated_response([entry_to_dict(entry) for entry in page])
