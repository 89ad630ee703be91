import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import DatabaseError, connection, models, transaction

from apps.audit import services as audit
from apps.audit.chain import GENESIS_HASH, entry_hash
from apps.audit.models import AppendOnlyError, AuditEntry
from apps.audit.request_id import bind, unbind
from apps.audit.selectors import chain_report
from apps.models.services import model_create, model_update

pytestmark = pytest.mark.django_db


def _chain() -> list[AuditEntry]:
    return list(AuditEntry.objects.order_by("sequence"))


def test_each_entry_gets_the_next_sequence_and_links_to_its_predecessor(model, owner):
    model_update(model=model, actor=owner, description="new card", team=None, tags=["nlp"])
    entries = _chain()
    assert [e.sequence for e in entries] == list(range(1, len(entries) + 1))
    assert entries[0].previous_hash == GENESIS_HASH
    for earlier, later in zip(entries, entries[1:]):
        assert later.previous_hash == earlier.entry_hash
    assert len({e.entry_hash for e in entries}) == len(entries)
    assert chain_report().intact


def test_the_hash_covers_the_canonical_content(owner):
    model = model_create(name="churn", actor=owner)
    entry = AuditEntry.objects.get(action="model.created")
    expected = entry_hash({
        "sequence": entry.sequence, "created_at": entry.created_at.isoformat(timespec="microseconds"),
        "actor_id": owner.pk, "actor_name": "owner", "action": "model.created", "object_type": "models.registeredmodel",
        "object_id": str(model.pk), "object_repr": "churn", "registered_model_id": model.pk,
        "before": None, "after": entry.after, "request_id": "", "previous_hash": GENESIS_HASH,
    })
    assert entry.entry_hash == expected and len(expected) == 64


def test_the_entry_carries_the_current_request_id(owner):
    token = bind("req-123")
    try:
        model_create(name="churn", actor=owner)
    finally:
        unbind(token)
    assert AuditEntry.objects.get(action="model.created").request_id == "req-123"


def test_values_are_stored_as_the_json_column_hands_them_back_so_the_hash_still_verifies(owner):
    model = model_create(name="churn", actor=owner)
    audit.record(
        actor=owner, obj=model, action="test.values", registered_model_id=model.pk,
        before={"pair": (1, 2), 3: "int key"}, after={"big": 1e16, "small": 3e-5, "text": "naïve ✓", "none": None},
    )
    entry = AuditEntry.objects.get(action="test.values")
    assert entry.before == {"pair": [1, 2], "3": "int key"}
    assert chain_report().intact


def test_a_rolled_back_change_leaves_no_entry_and_no_gap(owner):
    model = model_create(name="churn", actor=owner)
    with pytest.raises(RuntimeError), transaction.atomic():
        audit.record(actor=owner, obj=model, action="test.rolled_back")
        raise RuntimeError("the service failed after recording")
    audit.record(actor=owner, obj=model, action="test.kept")
    assert not AuditEntry.objects.filter(action="test.rolled_back").exists()
    assert [e.sequence for e in _chain()] == [1, 2]
    assert chain_report().intact


def test_system_actions_are_recorded_without_an_actor(owner):
    model = model_create(name="churn", actor=owner)
    entry = audit.record(actor=None, obj=model, action="test.system")
    assert entry.actor_id is None and entry.actor_name == "system"
    assert chain_report().intact


def test_an_entry_cannot_be_saved_again_or_deleted(model):
    entry = AuditEntry.objects.first()
    entry.after = {"forged": True}
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.save(update_fields=["after"])
    with pytest.raises(AppendOnlyError):
        entry.delete()
    entry.refresh_from_db()
    assert entry.after != {"forged": True}


def test_the_queryset_refuses_updates_deletes_and_bulk_writes(model):
    entries = AuditEntry.objects.all()
    with pytest.raises(AppendOnlyError):
        entries.update(action="forged")
    with pytest.raises(AppendOnlyError):
        entries.filter(sequence=1).delete()
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.bulk_update(list(entries), ["action"])
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.bulk_create([AuditEntry(action="forged")])
    assert not AuditEntry.objects.filter(action="forged").exists()


def test_an_entry_written_around_record_is_refused(model, owner):
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.create(
            actor=owner, actor_name="owner", action="forged", object_type=ContentType.objects.get_for_model(model),
            object_id=str(model.pk), object_repr="x",
        )


def test_deleting_a_user_keeps_their_entries_and_the_chain_intact(model, reviewer):
    entries_by_owner = AuditEntry.objects.filter(actor_name="owner").count()
    owner_id = model.created_by_id
    model.created_by.delete()
    assert AuditEntry.objects.filter(actor_id=owner_id, actor_name="owner").count() == entries_by_owner > 0
    assert chain_report().intact


@pytest.mark.postgres
def test_postgresql_refuses_update_and_delete_even_past_the_orm(model):
    assert connection.vendor == "postgresql"
    entry = AuditEntry.objects.order_by("sequence").first()
    plain_queryset = models.QuerySet(AuditEntry)  # skips the append-only queryset: only the trigger stands in the way
    attempts = [
        lambda: plain_queryset.filter(pk=entry.pk).update(action="forged"),
        lambda: plain_queryset.filter(pk=entry.pk)._raw_delete(connection.alias),
        lambda: connection.cursor().execute("UPDATE audit_auditentry SET action = 'forged' WHERE id = %s", [entry.pk]),
        lambda: connection.cursor().execute("DELETE FROM audit_auditentry WHERE id = %s", [entry.pk]),
    ]
    for attempt in attempts:
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            attempt()
    entry.refresh_from_db()
    assert entry.action == "model.created"
    assert chain_report().intact
