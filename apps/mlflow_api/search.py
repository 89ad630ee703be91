"""MLflow's search grammar, the part the registry answers, parsed strictly: what it does not understand is refused.

    filter   := clause ( AND clause )*
    clause   := name (= | != | LIKE | ILIKE) 'text'
              | run_id (= | !=) 'text' | run_id IN ('text', ...)
              | source_path (= | != | LIKE | ILIKE) 'text'
              | version_number (= | != | < | <= | > | >=) integer
              | tags.key (= | != | LIKE | ILIKE) 'text'        key: word characters and '.', or quoted with ` or "
                                                            (`tag.` too; `!=` also matches what lacks the tag)
    order_by := (name | version_number | creation_timestamp | last_updated_timestamp) [ASC | DESC]

Strings take single or double quotes ('it''s' is not supported; use "it's"). Keywords are case-insensitive. Models
accept only `name` and `tags.*` clauses and order by `name`, `creation_timestamp`, `last_updated_timestamp`.
"""

import base64
import binascii
import json
import re
from dataclasses import dataclass

from .errors import invalid

TOKEN = re.compile(
    r"""\s*(?:
      (?P<tag>tags?\.(?:`(?P<tick>[^`]+)`|"(?P<dq>[^"]+)"|(?P<bare>[\w.]+)))
     |(?P<string>'(?P<sq_text>[^']*)'|"(?P<dq_text>[^"]*)")
     |(?P<number>-?\d+)(?![\w.])
     |(?P<op>!=|<>|>=|<=|=|<|>)
     |(?P<word>[A-Za-z_][\w.]*)
     |(?P<punct>[(),])
    )""",
    re.X,
)
STRING_OPS = ("=", "!=", "LIKE", "ILIKE")
FIELD_OPS = {
    "name": STRING_OPS,
    "run_id": ("=", "!=", "IN"),
    "source_path": STRING_OPS,
    "version_number": ("=", "!=", "<", "<=", ">", ">="),
}
MODEL_FIELDS = ("name",)
VERSION_ORDER = ("name", "version_number", "creation_timestamp", "last_updated_timestamp")
MODEL_ORDER = ("name", "creation_timestamp", "last_updated_timestamp")


@dataclass(frozen=True)
class Clause:
    field: str  # name, run_id, source_path, version_number or tag
    op: str
    value: object  # str, int, or a tuple of str for IN
    key: str = ""  # the tag key


def _tokens(text: str) -> list[tuple[str, object]]:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise invalid(f"Cannot read the filter at {text[position:position + 20].strip()!r} (character {position + 1}). " + _HELP)
        position = match.end()
        if match["tag"]:
            tokens.append(("tag", match["tick"] or match["dq"] or match["bare"]))
        elif match["string"] is not None:
            tokens.append(("string", match["sq_text"] if match["sq_text"] is not None else match["dq_text"]))
        elif match["number"]:
            tokens.append(("number", int(match["number"])))
        elif match["op"]:
            tokens.append(("op", "!=" if match["op"] == "<>" else match["op"]))
        elif match["word"]:
            word = match["word"]
            upper = word.upper()
            tokens.append(("op", upper) if upper in ("LIKE", "ILIKE", "IN") else ("and", upper) if upper == "AND" else ("word", word))
        else:
            tokens.append(("punct", match["punct"]))
    return tokens


_HELP = (
    "Supported: name = / != / LIKE / ILIKE 'text', run_id = 'id' or IN ('a', 'b'), source_path = 'uri', "
    "version_number (=, !=, <, <=, >, >=) 3, tags.key = 'value' (or tags.`a key`), joined with AND."
)


def parse_filter(text: str | None, *, for_models: bool = False) -> list[Clause]:
    """The clauses of a filter string (all must hold), or INVALID_PARAMETER_VALUE naming what is not understood."""
    if not text or not text.strip():
        return []
    tokens = _tokens(text)
    clauses: list[Clause] = []
    index = 0
    while True:
        clause, index = _clause(tokens, index, for_models)
        clauses.append(clause)
        if index == len(tokens):
            return clauses
        if tokens[index][0] != "and":
            raise invalid(f"Expected AND between clauses, found {tokens[index][1]!r}. " + _HELP)
        index += 1


def _clause(tokens, index, for_models) -> tuple[Clause, int]:
    if index >= len(tokens):
        raise invalid("The filter ends where a clause should start. " + _HELP)
    kind, subject = tokens[index]
    if kind == "tag":
        field, allowed = "tag", STRING_OPS
    elif kind == "word" and subject in FIELD_OPS and (not for_models or subject in MODEL_FIELDS):
        field, allowed = subject, FIELD_OPS[subject]
    else:
        what = "models" if for_models else "model versions"
        raise invalid(f"Cannot filter {what} on {subject!r}. " + (_HELP if not for_models else "Supported: name = / != / LIKE / ILIKE 'text' and tags.key = 'value', joined with AND."))
    if index + 1 >= len(tokens) or tokens[index + 1][0] != "op":
        raise invalid(f"Expected a comparison after {subject!r}.")
    op = tokens[index + 1][1]
    if op not in allowed:
        raise invalid(f"{subject!r} cannot be compared with {op}; use {', '.join(allowed)}.")
    index += 2
    if op == "IN":
        return _in_list(tokens, index, field)
    if index >= len(tokens):
        raise invalid(f"Expected a value after {subject!r} {op}.")
    value_kind, value = tokens[index]
    expected = "number" if field == "version_number" else "string"
    if value_kind != expected:
        shape = "an integer, e.g. version_number > 3" if expected == "number" else "a quoted string, e.g. 'churn'"
        raise invalid(f"The value compared with {subject!r} must be {shape}.")
    return Clause(field=field, op=op, value=value, key=subject if field == "tag" else ""), index + 1


def _in_list(tokens, index, field) -> tuple[Clause, int]:
    if index >= len(tokens) or tokens[index] != ("punct", "("):
        raise invalid("IN takes a parenthesised list of quoted strings, e.g. run_id IN ('a', 'b').")
    values, index = [], index + 1
    while True:
        if index >= len(tokens) or tokens[index][0] != "string":
            raise invalid("IN takes a parenthesised list of quoted strings, e.g. run_id IN ('a', 'b').")
        values.append(tokens[index][1])
        index += 1
        if index < len(tokens) and tokens[index] == ("punct", ","):
            index += 1
            continue
        if index < len(tokens) and tokens[index] == ("punct", ")"):
            return Clause(field=field, op="IN", value=tuple(values)), index + 1
        raise invalid("IN takes a parenthesised list of quoted strings, e.g. run_id IN ('a', 'b').")


def like_regex(pattern: str) -> str:
    """SQL LIKE (% any run, _ one character) as an anchored regular expression."""
    return "^" + "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern) + "$"


def parse_order_by(items: list[str], *, for_models: bool = False) -> list[tuple[str, bool]]:
    """[(field, descending)] from MLflow's order_by strings, e.g. ["version_number DESC", "name"]."""
    allowed = MODEL_ORDER if for_models else VERSION_ORDER
    parsed = []
    for item in items:
        parts = item.split()
        field = parts[0] if parts else ""
        direction = parts[1].upper() if len(parts) == 2 else "ASC"
        if len(parts) not in (1, 2) or field not in allowed or direction not in ("ASC", "DESC"):
            raise invalid(f"Cannot order by {item!r}; use one of {', '.join(allowed)}, optionally followed by ASC or DESC.")
        parsed.append((field, direction == "DESC"))
    return parsed


def page_offset(token: str | None) -> int:
    """The offset a page token (from an earlier answer's next_page_token) stands for."""
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise invalid("Invalid page_token; pass the next_page_token of the previous answer unchanged.") from None
    if not isinstance(offset, int) or offset < 0:
        raise invalid("Invalid page_token; pass the next_page_token of the previous answer unchanged.")
    return offset


def page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def max_results(raw, *, default: int, limit: int) -> int:
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise invalid(f"max_results must be an integer between 1 and {limit}, not {raw!r}.") from None
    if not 1 <= value <= limit:
        raise invalid(f"max_results must be between 1 and {limit}, not {value}.")
    return value
