"""On PostgreSQL the database itself refuses UPDATE and DELETE on audit entries, whatever the client.

Someone with the table owner's rights can still disable the trigger; the hash chain (`manage.py audit_verify`)
is what catches that. TRUNCATE is not blocked: the test runner empties tables with it between tests.
SQLite has no such trigger; its writes go through the same append-only model and queryset.
"""

from django.db import migrations

CREATE = [
    """
CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$
""",
    """
CREATE TRIGGER audit_entry_append_only
    BEFORE UPDATE OR DELETE ON audit_auditentry
    FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()
""",
]

DROP = [
    "DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_auditentry",
    "DROP FUNCTION IF EXISTS audit_entry_append_only()",
]


def _on_postgresql(statements: list[str]):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for sql in statements:
                schema_editor.execute(sql, params=None)  # no parameters: the "%" in RAISE stays as written

    return run


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0004_sequence_unique"),
    ]

    operations = [
        migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP)),
    ]
