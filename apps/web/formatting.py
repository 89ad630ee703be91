import json


def pretty_json(value, sort_keys: bool = True) -> str:
    """JSON for a <pre>: indented, non-ASCII kept, keys sorted unless the caller's order means something."""
    return json.dumps(value, indent=2, sort_keys=sort_keys, ensure_ascii=False)
