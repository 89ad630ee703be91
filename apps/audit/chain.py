"""The hash chain: what an entry's hash covers, and the walk that checks every link.

Each entry stores the hash of its predecessor (`previous_hash`) and the SHA-256 of its own canonical content,
which includes that predecessor hash. Changing, deleting or reordering a stored entry therefore breaks the
chain at that entry; `manage.py audit_verify` walks it and names the first break.

Known limit of any hash chain kept in the same database: removing the newest entries (the tail) leaves a
shorter chain that is still consistent. `audit_verify` prints the head (sequence and hash) so it can be
written down elsewhere and compared later.
"""

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Iterable

GENESIS_HASH = "0" * 64


def _normalised(value: Any) -> Any:
    """Integral floats become ints, so 1e16 and 10000000000000000 hash alike.

    PostgreSQL's jsonb keeps numbers as `numeric` and hands 1e16 back as the integer 10000000000000000; without
    this, an entry holding such a float would fail verification although nobody changed it.
    """
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _normalised(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalised(item) for item in value]
    return value


def canonical_json(value: Any) -> str:
    return json.dumps(_normalised(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def timestamp(moment: datetime) -> str:
    """One spelling per instant, whatever time zone the database hands it back in."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def entry_content(
    *,
    sequence: int,
    created_at: datetime,
    actor_id: int | None,
    actor_name: str,
    action: str,
    object_type: str,
    object_id: str,
    object_repr: str,
    registered_model_id: int | None,
    before: Any,
    after: Any,
    request_id: str,
    previous_hash: str,
) -> dict[str, Any]:
    """Everything an entry's hash covers. `object_type` is "app_label.model".

    Frozen: changing what goes in (or how it is spelled) invalidates every stored hash, and migration 0003 uses it.
    """
    return {
        "sequence": sequence,
        "created_at": timestamp(created_at),
        "actor_id": actor_id,
        "actor_name": actor_name,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "object_repr": object_repr,
        "registered_model_id": registered_model_id,
        "before": before,
        "after": after,
        "request_id": request_id,
        "previous_hash": previous_hash,
    }


def entry_hash(content: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


# The columns the walk reads, in the order `entry_content` takes them (object type as its two halves).
ROW_FIELDS = (
    "id", "sequence", "created_at", "actor_id", "actor_name", "action", "object_type__app_label", "object_type__model",
    "object_id", "object_repr", "registered_model_id", "before", "after", "request_id", "previous_hash", "entry_hash",
)


def row_hash(row: dict[str, Any]) -> str:
    """Recompute the hash of a row read with `ROW_FIELDS`."""
    return entry_hash(
        entry_content(
            sequence=row["sequence"], created_at=row["created_at"], actor_id=row["actor_id"], actor_name=row["actor_name"],
            action=row["action"], object_type=f"{row['object_type__app_label']}.{row['object_type__model']}",
            object_id=row["object_id"], object_repr=row["object_repr"], registered_model_id=row["registered_model_id"],
            before=row["before"], after=row["after"], request_id=row["request_id"], previous_hash=row["previous_hash"],
        )
    )


class Break:
    CONTENT_CHANGED = "content changed"
    PREDECESSOR_MISSING = "predecessor missing (deleted)"
    ORDER_BROKEN = "order broken"
    PREDECESSOR_CHANGED = "predecessor changed"


@dataclass(frozen=True)
class ChainReport:
    checked: int
    head_sequence: int | None = None
    head_hash: str | None = None
    broken_sequence: int | None = None
    broken_id: int | None = None
    problem: str | None = None
    detail: str = ""

    @property
    def intact(self) -> bool:
        return self.problem is None


def walk(rows: Iterable[dict[str, Any]], hash_owner) -> ChainReport:
    """Check rows given in sequence order; stop at the first break.

    `hash_owner(h)` returns the sequence of the entry whose stored hash is `h`, or None. It is only called once a
    link is already broken, to tell entries that were moved (their predecessor still exists elsewhere in the
    chain) from entries whose predecessor was rewritten.
    """
    expected, previous_hash, checked, last = 1, GENESIS_HASH, 0, None
    for row in rows:
        sequence = row["sequence"]

        def broken(problem: str, detail: str) -> ChainReport:
            return ChainReport(checked, None, None, sequence, row["id"], problem, detail)

        if sequence != expected:
            missing = f"#{expected}" if sequence == expected + 1 else f"#{expected} to #{sequence - 1}"
            return broken(Break.PREDECESSOR_MISSING, f"expected sequence #{expected}, found #{sequence}: {missing} no longer exist")
        if row["previous_hash"] != previous_hash:
            owner = hash_owner(row["previous_hash"]) if row["previous_hash"] != GENESIS_HASH else 0
            if owner is not None:
                linked = "the start of the chain" if owner == 0 else f"entry #{owner}"
                return broken(Break.ORDER_BROKEN, f"it links to {linked}, but follows entry #{expected - 1}: entries were reordered")
            return broken(
                Break.PREDECESSOR_CHANGED,
                "its previous_hash matches no entry: the entry before it was rewritten (hash recomputed), replaced, "
                "or deleted with the later entries renumbered",
            )
        recomputed = row_hash(row)
        if recomputed != row["entry_hash"]:
            return broken(Break.CONTENT_CHANGED, f"stored hash {row['entry_hash']}, content hashes to {recomputed}")
        previous_hash, expected, checked, last = row["entry_hash"], expected + 1, checked + 1, row
    return ChainReport(checked, last["sequence"] if last else None, last["entry_hash"] if last else None)
