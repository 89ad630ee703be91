import json
from typing import Any

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.db import connection, models, transaction
from django.utils import timezone

from .chain import GENESIS_HASH, entry_content, entry_hash
from .models import AuditEntry
from .request_id import current_request_id

# Key of the PostgreSQL advisory lock that serialises appends to the chain: the bytes of "auditlog" as a bigint.
CHAIN_LOCK_KEY = int.from_bytes(b"auditlog", "big")


def _as_stored(value: Any) -> Any:
    """The value as the JSON column will hand it back (tuples as lists, keys as strings), so the hash matches."""
    return None if value is None else json.loads(json.dumps(value, default=str))


def _lock_model_row(registered_model_id: int | None) -> None:
    """Share-lock the model's row before the chain, so every transaction takes the two in one order.

    Pointer moves and registration lock the model row first and append to the chain later; a transaction that
    appended first and then wrote a row referring to the model (an event, a notification) took the row's key-share
    lock only at commit, for the deferred foreign-key check, and deadlocked with them.
    """
    if registered_model_id is not None and connection.vendor == "postgresql":
        table = connection.ops.quote_name(apps.get_model("models", "RegisteredModel")._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR KEY SHARE", [registered_model_id])


def _lock_chain() -> None:
    """Let one transaction at a time append, from here until it commits, so no two take the same predecessor.

    On SQLite every write transaction already holds the database's single write lock (BEGIN IMMEDIATE). Should
    another database slip through, the unique sequence still refuses a forked chain.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])


def record(
    *,
    actor,
    obj: models.Model,
    action: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    registered_model_id: int | None = None,
) -> AuditEntry:
    """The one way to write the audit trail. Call it inside the service's transaction so the change and its record commit together.

    Appends one entry to the hash chain: next sequence number, predecessor's hash, own hash. Appends are
    serialised until the caller's transaction ends, so keep the work after `record()` short.
    """
    object_type = ContentType.objects.get_for_model(obj, for_concrete_model=True)
    entry = AuditEntry(
        actor=actor if getattr(actor, "pk", None) else None,
        actor_name=getattr(actor, "get_username", lambda: "system")(),
        action=action,
        object_type=object_type,
        object_id=str(obj.pk),
        object_repr=str(obj)[:300],
        registered_model_id=registered_model_id,
        before=_as_stored(before),
        after=_as_stored(after),
        request_id=current_request_id(),
    )
    with transaction.atomic(savepoint=False):
        _lock_model_row(registered_model_id)
        _lock_chain()
        last = AuditEntry.objects.order_by("-sequence").values_list("sequence", "entry_hash").first()
        entry.sequence, entry.previous_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
        entry.created_at = timezone.now()  # taken under the lock, so time never runs backwards along the chain
        entry.entry_hash = entry_hash(_content(entry, object_type))
        entry.save()
    return entry


def _content(entry: AuditEntry, object_type: ContentType) -> dict[str, Any]:
    return entry_content(
        sequence=entry.sequence, created_at=entry.created_at, actor_id=entry.actor_id, actor_name=entry.actor_name,
        action=entry.action, object_type=f"{object_type.app_label}.{object_type.model}", object_id=entry.object_id,
        object_repr=entry.object_repr, registered_model_id=entry.registered_model_id, before=entry.before,
        after=entry.after, request_id=entry.request_id, previous_hash=entry.previous_hash,
    )
