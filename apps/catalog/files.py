"""A version's files as the files tab shows them: one folder at a time, a size-capped preview of text files read
through the artifact storage (local disk or S3 alike), and the tensor table of a safetensors file's header.

Previews read at most PREVIEW_MAX_BYTES of a file; a safetensors header is read with the validation's bounded
reader, so a page never reads a weight file's tensors.
"""

import json
import posixpath
from dataclasses import dataclass, field

from apps.validation.checks.base import TooDeeplyNested, loads_bounded
from apps.validation.checks.inspection import CorruptSafetensors, safetensors_tensors
from apps.versions.blobs import blob_chunks
from apps.versions.models import Artifact, ModelVersion

PREVIEW_MAX_BYTES = 256 * 1024
PREVIEW_JSON_DEPTH = 64
TEXT_SUFFIXES = {
    ".txt", ".py", ".cfg", ".ini", ".toml", ".csv", ".tsv", ".jsonl", ".log", ".sh", ".model_card", ".vocab", ".merges",
    ".spm", ".j2", ".jinja", ".xml", ".html", ".rst", ".lock", ".gitattributes", ".gitignore",
}
TEXT_NAMES = {"license", "readme", "notice", "requirements", "dockerfile", "makefile", "mlmodel", "merges.txt", "vocab.txt"}


class PreviewKind:
    JSON = "json"
    MARKDOWN = "markdown"
    YAML = "yaml"
    TEXT = "text"
    SAFETENSORS = "safetensors"
    BINARY = "binary"


@dataclass
class Folder:
    """One folder of a version: its sub-folders (name, path, file count, total size) and its files (Artifact rows)."""

    path: str  # "" for the top, else ending in "/"
    folders: list[dict] = field(default_factory=list)
    files: list[Artifact] = field(default_factory=list)

    @property
    def crumbs(self) -> list[tuple[str, str]]:
        """(name, path) of each folder from the top down to this one."""
        parts = self.path.strip("/").split("/") if self.path else []
        return [(part, "/".join(parts[: index + 1]) + "/") for index, part in enumerate(parts)]


def clean_folder(value: str) -> str:
    """`?dir=` as a folder path ("" or ending in "/"), never climbing out of the version."""
    parts = [part for part in (value or "").split("/") if part and part not in (".", "..")]
    return "/".join(parts) + "/" if parts else ""


def version_folder(version: ModelVersion, path: str) -> Folder | None:
    """The folder `path` of a version (one query), or None when no file lies under it."""
    folder = Folder(path=path)
    artifacts = Artifact.objects.filter(version=version, path__startswith=path).only("path", "size", "sha256", "content_type")
    totals: dict[str, list[int]] = {}
    for artifact in artifacts.order_by("path"):
        rest = artifact.path[len(path):]
        if "/" in rest:
            name = rest.split("/", 1)[0]
            count_size = totals.setdefault(name, [0, 0])
            count_size[0] += 1
            count_size[1] += artifact.size
        else:
            artifact.name = rest
            folder.files.append(artifact)
    folder.folders = [{"name": name, "path": f"{path}{name}/", "files": count, "size": size} for name, (count, size) in sorted(totals.items())]
    if path and not folder.files and not folder.folders:
        return None
    return folder


def preview_kind(path: str) -> str:
    name = posixpath.basename(path).lower()
    suffix = posixpath.splitext(name)[1]
    if suffix == ".safetensors":
        return PreviewKind.SAFETENSORS
    if suffix == ".json":
        return PreviewKind.JSON
    if suffix in (".md", ".markdown"):
        return PreviewKind.MARKDOWN
    if suffix in (".yaml", ".yml"):
        return PreviewKind.YAML
    if suffix in TEXT_SUFFIXES or name in TEXT_NAMES or posixpath.splitext(name)[0] in TEXT_NAMES:
        return PreviewKind.TEXT
    return PreviewKind.BINARY


def _head(artifact: Artifact, limit: int) -> bytes:
    return b"".join(blob_chunks(artifact.sha256, length=min(limit, artifact.size)))


def artifact_preview(artifact: Artifact) -> dict:
    """What the files tab shows of one file: `kind`, and `text` (the first PREVIEW_MAX_BYTES, decoded; JSON indented
    when the whole file is read and parses), `truncated`, or `tensors` and `summary` for a safetensors header, or an
    `error` saying why there is no preview. Text is returned raw: the template escapes it (Markdown is rendered by the
    project's sanitizing `markdown` filter)."""
    kind = preview_kind(artifact.path)
    result = {"kind": kind, "text": "", "truncated": False, "tensors": [], "summary": None, "error": ""}
    if kind == PreviewKind.SAFETENSORS:
        try:
            head = _head(artifact, 8)
            summary, tensors = safetensors_tensors(head, artifact.size, lambda n: b"".join(blob_chunks(artifact.sha256, start=8, length=n)))
        except CorruptSafetensors as exc:
            result["error"] = f"The header cannot be read: {exc}."
        else:
            result.update(summary=summary, tensors=tensors)
        return result
    if kind == PreviewKind.BINARY:
        result["error"] = "A binary file: no preview. Download it to look inside."
        return result
    data = _head(artifact, PREVIEW_MAX_BYTES)
    if b"\x00" in data[:8192]:
        result.update(kind=PreviewKind.BINARY, error="The file holds binary data: no preview. Download it to look inside.")
        return result
    result["truncated"] = artifact.size > len(data)
    text = data.decode("utf-8", errors="replace")
    if kind == PreviewKind.JSON and not result["truncated"]:
        try:
            text = json.dumps(loads_bounded(data, max_depth=PREVIEW_JSON_DEPTH), indent=2, ensure_ascii=False)
        except (TooDeeplyNested, UnicodeDecodeError, ValueError):
            pass  # shown as it is
    result["text"] = text
    return result
