"""Entries written before the chain existed get their sequence (by id) and hashes when migrating."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apps.audit.models import AuditEntry

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE_CHAIN = [("audit", "0001_initial")]


def _migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor


def test_existing_entries_are_chained_in_id_order(make_user, capsys):
    actor = make_user("old-timer")
    latest = [key for key in MigrationExecutor(connection).loader.graph.leaf_nodes() if key[0] == "audit"]
    executor = _migrate(BEFORE_CHAIN)
    try:
        old_apps = executor.loader.project_state(BEFORE_CHAIN).apps
        OldEntry = old_apps.get_model("audit", "AuditEntry")
        ContentType = old_apps.get_model("contenttypes", "ContentType")
        user_type = ContentType.objects.get(app_label="auth", model="user")
        for index in range(5):
            OldEntry.objects.create(
                actor_id=actor.pk, actor_name="old-timer", action="legacy.change", object_type=user_type,
                object_id=str(actor.pk), object_repr=f"change {index}", after={"index": index, "score": 0.5 + index},
            )
        ids = list(OldEntry.objects.order_by("id").values_list("id", flat=True))
    finally:
        _migrate(latest)
    assert list(AuditEntry.objects.order_by("sequence").values_list("id", flat=True)) == ids
    assert list(AuditEntry.objects.order_by("sequence").values_list("sequence", flat=True)) == [1, 2, 3, 4, 5]
    call_command("audit_verify")
    assert "audit chain intact: 5 entries" in capsys.readouterr().out
