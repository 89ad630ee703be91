from .chain import ROW_FIELDS, ChainReport, walk
from .models import AuditEntry


def chain_report(chunk_size: int = 2000) -> ChainReport:
    """Walk the whole chain in sequence order and report the first break (memory stays flat: rows are streamed)."""
    rows = AuditEntry.objects.order_by("sequence").values(*ROW_FIELDS).iterator(chunk_size=chunk_size)

    def hash_owner(stored_hash: str) -> int | None:
        return AuditEntry.objects.filter(entry_hash=stored_hash).values_list("sequence", flat=True).first()

    return walk(rows, hash_owner)
