"""Audit fixtures: an auditor (the global view permission, no model permissions) and a way to tamper with rows."""

import pytest
from django.contrib.auth.models import Permission
from django.db import connection


@pytest.fixture
def auditor(make_user):
    user = make_user("auditor")
    user.user_permissions.add(Permission.objects.get(content_type__app_label="audit", codename="view_auditentry"))
    return user


@pytest.fixture
def superuser(make_user):
    return make_user("root", is_staff=True, is_superuser=True)


def tamper(*statements: tuple[str, list]) -> None:
    """Run raw SQL against the audit table as an attacker with database access would.

    On PostgreSQL that attacker first disables the append-only trigger, then turns it back on.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The test's transaction has deferred foreign-key checks queued on the table; ALTER TABLE wants none.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE audit_auditentry DISABLE TRIGGER audit_entry_append_only")
        for sql, params in statements:
            cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditentry ENABLE TRIGGER audit_entry_append_only")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
