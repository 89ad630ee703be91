"""`manage.py audit_verify` against a chain tampered with through raw SQL (the trigger disabled on PostgreSQL)."""

import json

import pytest
from django.core.management import CommandError, call_command

from apps.audit.chain import ROW_FIELDS, row_hash
from apps.audit.models import AuditEntry
from apps.models.services import model_update

from .conftest import tamper

pytestmark = pytest.mark.django_db


@pytest.fixture
def chain(model, owner):
    """Six entries: a model created, two permissions granted, three updates."""
    for index in range(3):
        model_update(model=model, actor=owner, description=f"card {index}", team=None, tags=[])
    entries = list(AuditEntry.objects.order_by("sequence"))
    assert [e.sequence for e in entries] == [1, 2, 3, 4, 5, 6]
    return entries


def _verify() -> str:
    with pytest.raises(CommandError) as caught:
        call_command("audit_verify")
    assert caught.value.returncode != 0
    return str(caught.value)


def test_an_intact_chain_passes_and_names_its_head(chain, capsys):
    call_command("audit_verify")
    out = capsys.readouterr().out
    assert "audit chain intact: 6 entries" in out
    assert f"head: sequence 6, hash {chain[-1].entry_hash}" in out


def test_an_empty_log_is_intact(db, capsys):
    call_command("audit_verify")
    assert "audit chain intact: 0 entries" in capsys.readouterr().out


def test_it_catches_an_edited_entry(chain):
    tamper(("UPDATE audit_auditentry SET after = %s WHERE sequence = 4", [json.dumps({"description": "forged"})]))
    assert AuditEntry.objects.get(sequence=4).after == {"description": "forged"}
    message = _verify()
    assert f"broken at sequence 4 (id {chain[3].pk}): content changed" in message
    assert "3 entries before it are intact" in message


def test_it_catches_an_edited_entry_whose_hash_was_recomputed(chain):
    row = AuditEntry.objects.filter(sequence=4).values(*ROW_FIELDS).get()
    row["actor_name"] = "someone-else"
    tamper(("UPDATE audit_auditentry SET actor_name = %s, entry_hash = %s WHERE sequence = 4", ["someone-else", row_hash(row)]))
    message = _verify()
    assert f"broken at sequence 5 (id {chain[4].pk}): predecessor changed" in message


def test_it_catches_a_deleted_entry(chain):
    tamper(("DELETE FROM audit_auditentry WHERE sequence = 3", []))
    message = _verify()
    assert f"broken at sequence 4 (id {chain[3].pk}): predecessor missing (deleted)" in message
    assert "#3 no longer exist" in message


def test_it_catches_a_deleted_entry_even_when_later_ones_are_renumbered(chain):
    tamper(
        ("DELETE FROM audit_auditentry WHERE sequence = 3", []),
        *[("UPDATE audit_auditentry SET sequence = %s WHERE sequence = %s", [seq - 1, seq]) for seq in (4, 5, 6)],
    )
    message = _verify()
    assert f"broken at sequence 3 (id {chain[3].pk}): predecessor changed" in message


def test_it_catches_the_first_entry_deleted(chain):
    tamper(("DELETE FROM audit_auditentry WHERE sequence = 1", []))
    message = _verify()
    assert "broken at sequence 2" in message and "predecessor missing (deleted)" in message and "#1 no longer exist" in message


def test_it_catches_reordered_entries(chain):
    tamper(
        ("UPDATE audit_auditentry SET sequence = 999999 WHERE sequence = 2", []),
        ("UPDATE audit_auditentry SET sequence = 2 WHERE sequence = 5", []),
        ("UPDATE audit_auditentry SET sequence = 5 WHERE sequence = 999999", []),
    )
    message = _verify()
    assert f"broken at sequence 2 (id {chain[4].pk}): order broken" in message
    assert "links to entry #4, but follows entry #1" in message


def test_it_catches_the_first_two_entries_swapped(chain):
    tamper(
        ("UPDATE audit_auditentry SET sequence = 999999 WHERE sequence = 1", []),
        ("UPDATE audit_auditentry SET sequence = 1 WHERE sequence = 2", []),
        ("UPDATE audit_auditentry SET sequence = 2 WHERE sequence = 999999", []),
    )
    message = _verify()
    assert f"broken at sequence 1 (id {chain[1].pk}): order broken" in message


def test_the_command_exits_non_zero_from_the_shell(chain):
    tamper(("UPDATE audit_auditentry SET action = 'forged' WHERE sequence = 6", []))
    # CommandError makes manage.py print the message and exit with its returncode (1).
    with pytest.raises(CommandError) as caught:
        call_command("audit_verify")
    assert caught.value.returncode == 1 and "sequence 6" in str(caught.value)
