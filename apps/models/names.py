"""Model names: canonicalised once (Unicode NFC) and checked on that same string, which is the one stored."""

import re
import unicodedata

from django.core.exceptions import ValidationError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
RESERVED_NAMES = {"new"}  # would collide with the dashboard's /models/new/


def canonical_model_name(raw: str) -> str:
    return unicodedata.normalize("NFC", raw.strip())


def validate_model_name(name: str) -> None:
    if name != canonical_model_name(name):
        raise ValidationError("The name is not in canonical form (Unicode NFC, no surrounding spaces).", code="not_canonical")
    if not NAME_PATTERN.match(name):
        raise ValidationError(
            "Use 1-128 characters: ASCII letters, digits, '.', '_' or '-', starting with a letter or digit "
            "(no '/', '%', spaces or '..').",
            code="invalid_name",
        )
    if name.lower() in RESERVED_NAMES:
        raise ValidationError(f"'{name}' is reserved; pick another name.", code="reserved_name")
    if ".." in name:
        raise ValidationError("The name may not contain '..'.", code="invalid_name")
