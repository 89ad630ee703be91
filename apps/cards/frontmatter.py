"""A README.md's YAML front matter (`---` ... `---` at the top, as on the Hugging Face Hub), read safely: bounded in
size, `yaml.safe_load` semantics, no anchors or aliases (so a small document cannot expand into a huge one)."""

import yaml

MAX_FRONT_MATTER_BYTES = 16 * 1024
# Front-matter keys (as the Hub and common templates spell them) -> card fields.
FIELD_KEYS = {
    "license": "license",
    "intended_use": "intended_use", "intended-use": "intended_use", "intended_uses": "intended_use",
    "limitations": "limitations", "bias_risks_limitations": "limitations",
    "training_data": "training_data", "datasets": "training_data",
}


class FrontMatterError(ValueError):
    pass


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases: `&a [*a, *a, ...]` nested a few times would otherwise build millions of nodes."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise FrontMatterError("the front matter uses a YAML alias (*name); write the values out instead")
        return super().compose_node(parent, index)


def _text(value) -> str | None:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list) and all(isinstance(item, (str, int, float)) for item in value):
        return ", ".join(str(item) for item in value)
    return None


def split_front_matter(text: str) -> tuple[dict[str, str], str, list[str]]:
    """(card fields found in the front matter, the Markdown after it, notes about what was left out).
    Raises FrontMatterError when there is front matter that cannot be read."""
    if not text.startswith("---"):
        return {}, text, []
    first_line_end = text.find("\n")
    if first_line_end == -1 or text[:first_line_end].strip() != "---":
        return {}, text, []
    end = text.find("\n---", first_line_end)
    if end == -1:
        raise FrontMatterError("the front matter opened with --- has no closing ---")
    raw = text[first_line_end + 1:end]
    if len(raw.encode()) > MAX_FRONT_MATTER_BYTES:
        raise FrontMatterError(f"the front matter is over {MAX_FRONT_MATTER_BYTES // 1024} KiB")
    try:
        data = yaml.load(raw, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise FrontMatterError(f"the front matter is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FrontMatterError("the front matter must be a mapping of keys to values")
    body = text[end + 4:].split("\n", 1)[1] if "\n" in text[end + 4:] else ""
    fields, notes = {}, []
    for key, value in data.items():
        field = FIELD_KEYS.get(str(key).lower())
        shown = _text(value) if field else None
        if field and shown is not None and field not in fields:
            fields[field] = shown
        else:
            notes.append(str(key)[:60])
    return fields, body.lstrip("\n"), notes
