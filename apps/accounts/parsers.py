"""Request bodies the database can store: one JSON reader and the API's parsers built on it.

PostgreSQL refuses NUL characters in text and jsonb, and no UTF-8 encoder accepts an unpaired surrogate
(JSON can spell both as `\\u0000` and `\\ud800`). Both used to reach the database and answer 500 after the
artifacts had been stored. Deep nesting is refused here too: `json.loads` raises RecursionError on
`[[[[...` a few thousand deep, and what parses still has to be walked, stored and rendered.
"""

import json
import re

from django.core.exceptions import ValidationError
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, MultiPartParser

MAX_JSON_DEPTH = 64
UNSTORABLE_TEXT = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored (None when it can)."""
    found = UNSTORABLE_TEXT.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not contain NUL characters (\\u0000)."
    return f"must not contain an unpaired surrogate (\\u{ord(found.group()):04x}); send text as valid UTF-8."


def _child(path: str, key) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def json_document_errors(document, *, whole: str = "body") -> dict[str, list[str]]:
    """Errors keyed by the path of the offending field (`description`, `datasets[0].name`), empty when the document is fine.

    Iterative, so a document as deep as the parser allowed cannot exhaust the stack here.
    """
    errors: dict[str, list[str]] = {}
    stack = [("", document, 0)]
    while stack:
        path, value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            errors.setdefault(path or whole, []).append(f"nests deeper than {MAX_JSON_DEPTH} levels.")
            continue
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                errors.setdefault(path or whole, []).append(problem)
        elif isinstance(value, dict):
            for key, item in value.items():
                problem = text_problem(key)
                if problem:
                    errors.setdefault(path or whole, []).append(f"has a key that {problem}")
                    continue
                stack.append((_child(path, key), item, depth + 1))
        elif isinstance(value, list):
            stack.extend((_child(path, index), item, depth + 1) for index, item in enumerate(value))
    return errors


def _no_constants(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def json_loads_checked(text: str | bytes, *, field: str = "body"):
    """Parse JSON text, refusing NaN/Infinity, nesting deeper than MAX_JSON_DEPTH and strings no database can store.

    Raises ValidationError keyed by the offending field's path inside the document, or by `field` for the whole text.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError({field: [f"is not UTF-8 text: {exc}."]}) from exc
    try:
        document = json.loads(text, parse_constant=_no_constants)
    except RecursionError as exc:
        raise ValidationError({field: [f"nests deeper than {MAX_JSON_DEPTH} levels."]}) from exc
    except ValueError as exc:
        raise ValidationError({field: [f"is not valid JSON: {exc}."]}) from exc
    errors = json_document_errors(document, whole=field)
    if errors:
        raise ValidationError(errors)
    return document


class CheckedJSONParser(JSONParser):
    """DRF's JSON parser with `json_loads_checked`. (DRF hands JSON parsers `request.body`, which Django caps at
    DATA_UPLOAD_MAX_MEMORY_SIZE from the Content-Length header before reading.)"""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return json_loads_checked(stream.read())
        except ValidationError as exc:
            if set(exc.message_dict) == {"body"}:
                raise ParseError(f"JSON parse error - the body {' '.join(exc.message_dict['body'])}") from exc
            raise


class CheckedMultiPartParser(MultiPartParser):
    """Multipart bodies whose text fields the database can store (file parts are bytes and are not looked at here)."""

    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        errors: dict[str, list[str]] = {}
        for key, values in parsed.data.lists():
            problems = {text_problem(text) for text in (key, *values)} - {None}
            if problems:
                errors["body" if text_problem(key) else key] = sorted(problems)
        if errors:
            raise ValidationError(errors)
        return parsed
