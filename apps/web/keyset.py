"""Keyset pages: a page starts where the one before it ended (`number < 4711`), found through the index, instead of
after counting past every row before it (OFFSET), so the last page of 100,000 rows costs what the first does. Used for
lists ordered by one unique key (a model's versions by number) in the API (opaque `cursor` links) and on the dashboard
(first / previous / next / last links). Counts are exact up to COUNT_ESTIMATE_ABOVE rows; past that, the dashboard shows
PostgreSQL's own estimate ("about 100,000") rather than count every row on every page.
"""

import base64
import binascii
import json
from dataclasses import dataclass, field

from django.db import connections
from django.db.models import QuerySet

COUNT_ESTIMATE_ABOVE = 10_000


@dataclass(frozen=True)
class Position:
    """Where a page starts: after the row whose key is `after`, before the row whose key is `before`, the last page
    (`last`), or the first page (none of them)."""

    after: object = None
    before: object = None
    last: bool = False

    def encode(self) -> str:
        """An opaque cursor for the API (base64 of JSON); `Position.decode` reads it back."""
        raw = json.dumps({"a": self.after} if self.after is not None else {"b": self.before} if self.before is not None else {"l": self.last})
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str, kind: type = int) -> "Position":
        """The position a cursor names; ValueError when it is not one this list gave out (`kind`: the key's type)."""
        try:
            raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
            raise ValueError("is not a cursor this list gave out; follow the 'next' and 'previous' links.") from exc
        if not isinstance(raw, dict) or len(raw) != 1:
            raise ValueError("is not a cursor this list gave out; follow the 'next' and 'previous' links.")
        (name, value), = raw.items()
        if name == "l" and value is True:
            return cls(last=True)
        if name in ("a", "b") and type(value) is kind:
            return cls(after=value) if name == "a" else cls(before=value)
        raise ValueError("is not a cursor this list gave out; follow the 'next' and 'previous' links.")

    @classmethod
    def from_query(cls, params) -> "Position":
        """The position a dashboard link names (`?after=`, `?before=`, `?last=1`); anything else is the first page,
        as Django's Paginator.get_page forgives a bad page number."""
        for name in ("after", "before"):
            value = params.get(name, "")
            if value.isdigit():
                return cls(**{name: int(value)})
        return cls(last=params.get("last") == "1")


@dataclass
class KeysetPage:
    """One page of rows (dicts or model instances) and where its neighbours start. Iterable like a Django Page."""

    items: list
    key: str
    has_next: bool
    has_previous: bool
    count: int = 0
    count_estimated: bool = False
    keyset: bool = field(default=True, init=False)  # templates tell a keyset page from a numbered one by this

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def _key(self, row):
        return row[self.key] if isinstance(row, dict) else getattr(row, self.key)

    @property
    def next_position(self) -> Position | None:
        return Position(after=self._key(self.items[-1])) if self.has_next and self.items else None

    @property
    def previous_position(self) -> Position | None:
        return Position(before=self._key(self.items[0])) if self.has_previous and self.items else None


def keyset_page(queryset: QuerySet, *, key: str, descending: bool, size: int, position: Position = Position()) -> KeysetPage:
    """The page of `queryset` (ordered by the unique `key`, descending or not) at `position`: one query of `size` + 1
    rows, whatever the depth. The last page is the last `size` rows (read in reverse), not what is left after whole pages."""
    forward = [f"-{key}" if descending else key]
    backward = [key if descending else f"-{key}"]
    if position.after is not None:
        rows = list(queryset.filter(**{f"{key}__{'lt' if descending else 'gt'}": position.after}).order_by(*forward)[: size + 1])
        return KeysetPage(rows[:size], key, has_next=len(rows) > size, has_previous=True)
    if position.before is not None or position.last:
        narrowed = queryset.filter(**{f"{key}__{'gt' if descending else 'lt'}": position.before}) if position.before is not None else queryset
        rows = list(narrowed.order_by(*backward)[: size + 1])
        return KeysetPage(rows[:size][::-1], key, has_next=not position.last, has_previous=len(rows) > size)
    rows = list(queryset.order_by(*forward)[: size + 1])
    return KeysetPage(rows[:size], key, has_next=len(rows) > size, has_previous=False)


def counted(queryset: QuerySet, *, at_most: int | None = None, estimate_above: int | None = None) -> tuple[int, bool]:
    """How many rows `queryset` holds, and whether that is an estimate: exact up to `estimate_above` rows, else the
    PostgreSQL planner's estimate (EXPLAIN, from the table statistics ANALYZE keeps; no rows are read). Exact on
    other databases. `at_most`, a bound known without a query (a model's last version number), saves the EXPLAIN."""
    estimate_above = COUNT_ESTIMATE_ABOVE if estimate_above is None else estimate_above
    connection = connections[queryset.db]
    if connection.vendor != "postgresql" or (at_most is not None and at_most <= estimate_above):
        return queryset.count(), False
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    estimate = int((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]["Plan Rows"])
    if estimate <= estimate_above:
        return queryset.count(), False
    return estimate, True


class Seeking:
    """A queryset in the order of a unique key, sliced for numbered pages (Django's Paginator) without an OFFSET over
    the full rows: the first key of the slice is found by an OFFSET over the key alone (an index-only scan, no select
    list or subqueries computed for the skipped rows), then the page is read from that key on, as a keyset page is."""

    def __init__(self, queryset: QuerySet, *, key: str, descending: bool):
        self.queryset, self.key, self.descending = queryset, key, descending
        self.ordering = f"-{key}" if descending else key

    def count(self) -> int:
        return self.queryset.count()

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index: slice) -> list:
        start, stop = index.start or 0, index.stop
        ordered = self.queryset.order_by(self.ordering)
        if not start:
            return list(ordered[:stop])
        first = ordered.values_list(self.key, flat=True)[start : start + 1]
        if not first:
            return []
        narrowed = ordered.filter(**{f"{self.key}__{'lte' if self.descending else 'gte'}": first[0]})
        return list(narrowed[: stop - start] if stop is not None else narrowed)
