from django.db.models import OuterRef, QuerySet, Subquery

from .chain import ROW_FIELDS, ChainReport, walk
from .models import AuditEntry


def entries_for_listing(registered_model_id: int | None = None) -> QuerySet[AuditEntry]:
    """Entries with their object type and model name loaded in the same query (page query counts stay flat)."""
    from apps.models.models import RegisteredModel

    entries = AuditEntry.objects.select_related("object_type")
    if registered_model_id is not None:
        entries = entries.for_model(registered_model_id)
    names = RegisteredModel.objects.filter(pk=OuterRef("registered_model_id")).values("name")[:1]
    return entries.annotate(model_name=Subquery(names)).order_by("-sequence")


def chain_report(chunk_size: int = 2000) -> ChainReport:
    """Walk the whole chain in sequence order and report the first break (memory stays flat: rows are streamed)."""
    rows = AuditEntry.objects.order_by("sequence").values(*ROW_FIELDS).iterator(chunk_size=chunk_size)

    def hash_owner(stored_hash: str) -> int | None:
        return AuditEntry.objects.filter(entry_hash=stored_hash).values_list("sequence", flat=True).first()

    return walk(rows, hash_owner)
