from django.db.models import OuterRef, QuerySet, Subquery

from apps.audit.models import AuditEntry

from .models import RegisteredModel


def audit_entries_for_listing(registered_model_id: int | None = None) -> QuerySet[AuditEntry]:
    """Audit entries with their object type and model name loaded in the same query (page query counts stay flat).

    Here rather than in audit, which sits below models and never imports them."""
    entries = AuditEntry.objects.select_related("object_type")
    if registered_model_id is not None:
        entries = entries.for_model(registered_model_id)
    names = RegisteredModel.objects.filter(pk=OuterRef("registered_model_id")).values("name")[:1]
    return entries.annotate(model_name=Subquery(names)).order_by("-sequence")
