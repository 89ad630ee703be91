import json

from django import template

from apps.audit.permissions import is_auditor as _is_auditor
from apps.web.formatting import pretty_json

register = template.Library()

_MISSING = object()
SHORT = 40

register.filter("pretty_json", pretty_json)


@register.filter
def is_auditor(user) -> bool:
    return _is_auditor(user)


def _short(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= SHORT else text[: SHORT - 1] + "…"


@register.filter
def changes(entry) -> list[dict]:
    """Top-level keys whose value differs between before and after, shortened for a one-line summary."""
    before = entry.before if isinstance(entry.before, dict) else {}
    after = entry.after if isinstance(entry.after, dict) else {}
    keys = list(after) + [key for key in before if key not in after]
    rows = []
    for key in keys:
        old, new = before.get(key, _MISSING), after.get(key, _MISSING)
        if old == new:
            continue
        rows.append({
            "key": key,
            "before": None if old is _MISSING else _short(old),
            "after": None if new is _MISSING else _short(new),
        })
    return rows
