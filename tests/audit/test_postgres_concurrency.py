"""Concurrent appends on a real multi-connection database: one chain, no forks, no gaps."""


import pytest
from django.core.management import call_command
from django.db import connection

from apps.audit.models import AuditEntry
from apps.models.permissions import Action
from apps.models.services import model_create, model_permission_grant, model_update
from tests.factories import register_version
from tests.helpers import in_threads

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_services_auditing_at_once_leave_one_gapless_intact_chain(owner, reviewer, capsys):
    assert connection.vendor == "postgresql"
    shared = model_create(name="shared", actor=owner)
    before = AuditEntry.objects.count()

    def work(index: int) -> None:
        # Each thread writes to its own model (no shared row lock serialises them) and to the shared one.
        own = model_create(name=f"model-{index}", actor=owner)
        for round_ in range(3):
            model_update(model=own, actor=owner, description=f"{index}-{round_}", team=None, tags=[])
        model_permission_grant(model=own, actor=owner, action=Action.VIEW, user=reviewer)
        register_version(shared, owner, files={f"w{index}.bin": str(index).encode()})

    assert in_threads(8, work) == []
    sequences = list(AuditEntry.objects.order_by("sequence").values_list("sequence", flat=True))
    assert len(sequences) == before + 8 * 6
    assert sequences == list(range(1, len(sequences) + 1))
    call_command("audit_verify")
    assert f"audit chain intact: {len(sequences)} entries" in capsys.readouterr().out
