"""Alias names: named pointers on a model (`@champion`, `@eu-prod`) beside the built-in `production` pointer.

Names are canonicalised and checked like model names (Unicode NFC, the same characters). The stage names are
reserved: `production` is the built-in alias (the production stage's pointer), the others are not pointers and
would read as stages. `latest` and `v<number>` are reserved because version URIs (`models:/name/latest`,
`models:/name@v3`) would be ambiguous with them.
"""

import re

from django.core.exceptions import ValidationError
from django.http import Http404

from apps.models.names import NAME_PATTERN, canonical_model_name

from .lifecycle import Stage

PRODUCTION_ALIAS = Stage.PRODUCTION.value
RESERVED_ALIASES = frozenset(Stage.values) - {PRODUCTION_ALIAS} | {"latest", "new"}
VERSION_LIKE = re.compile(r"^v\d+$", re.IGNORECASE)


def canonical_alias_name(raw: str) -> str:
    return canonical_model_name(raw)


def validate_alias_name(name: str) -> None:
    """Refuse a name a user may not give a free alias (the built-in `production` passes: it names that pointer)."""
    if name != canonical_alias_name(name):
        raise ValidationError({"alias": ["The alias is not in canonical form (Unicode NFC, no surrounding spaces)."]})
    if not NAME_PATTERN.match(name) or ".." in name:
        raise ValidationError(
            {"alias": ["Name aliases with 1-128 characters: ASCII letters, digits, '.', '_' or '-', starting with a letter or digit, e.g. champion."]}
        )
    if name.lower() in RESERVED_ALIASES or VERSION_LIKE.match(name) or (name.lower() == PRODUCTION_ALIAS and name != PRODUCTION_ALIAS):
        raise ValidationError({"alias": [f"'{name}' is reserved (stage names, 'latest', 'new' and v<number>); pick another alias name."]})


def checked_alias_name(raw: str) -> str:
    """The canonical name of the alias `raw` names, or a ValidationError saying which names an alias may have."""
    alias = canonical_alias_name(raw)
    validate_alias_name(alias)
    return alias


def alias_from_url(raw: str) -> str:
    """The alias a URL names, canonical; a name no alias may have is a 404 (nothing by that name can exist)."""
    try:
        return checked_alias_name(raw)
    except ValidationError as exc:
        raise Http404(exc.messages[0]) from exc
