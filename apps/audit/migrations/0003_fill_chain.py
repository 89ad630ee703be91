"""Give entries written before the chain existed their place in it: sequence by id, then the hashes."""

from django.db import migrations

from apps.audit.chain import GENESIS_HASH, ROW_FIELDS, row_hash

BATCH = 500


def fill_chain(apps, schema_editor):
    AuditEntry = apps.get_model("audit", "AuditEntry")
    entries = AuditEntry.objects.using(schema_editor.connection.alias)
    fields = [name for name in ROW_FIELDS if name not in ("sequence", "previous_hash", "entry_hash")]
    previous_hash, pending = GENESIS_HASH, []
    for sequence, row in enumerate(entries.order_by("id").values(*fields).iterator(chunk_size=BATCH), start=1):
        row.update(sequence=sequence, previous_hash=previous_hash)
        previous_hash = row_hash(row)
        pending.append(AuditEntry(id=row["id"], sequence=sequence, previous_hash=row["previous_hash"], entry_hash=previous_hash))
        if len(pending) == BATCH:
            entries.bulk_update(pending, ["sequence", "previous_hash", "entry_hash"])
            pending = []
    if pending:
        entries.bulk_update(pending, ["sequence", "previous_hash", "entry_hash"])


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0002_chain_fields"),
    ]

    operations = [
        migrations.RunPython(fill_chain, migrations.RunPython.noop),
    ]
