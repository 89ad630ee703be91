"""The manifest of a version: which files it holds, byte for byte. What `pull` checks, archives carry and signatures sign.

    {"model": "minilm", "version": 3, "version_id": "6f1c...", "files": [{"path": "1_Pooling/config.json", "size": 190, "sha256": "..."}, ...]}

Files are sorted by path (code point order, the same on every database), so the same version always gives the
same document and the same bytes (`manifest_json`).
"""

import hashlib
import json

from .models import ModelVersion

MANIFEST_NAME = "MANIFEST.json"
# A version may hold a file named MANIFEST.json itself; its archive then carries the registry's manifest under this name.
MANIFEST_FALLBACK_NAME = "MANIFEST.registry.json"


def version_manifest(version: ModelVersion) -> dict:
    """The manifest document of `version` (one query for its files; `version.model` should be loaded with it)."""
    files = sorted(version.artifacts.values("path", "size", "sha256").order_by(), key=lambda row: row["path"])
    return {
        "model": version.model.name,
        "version": version.number,
        "version_id": str(version.pk),
        "files": [{"path": row["path"], "size": row["size"], "sha256": row["sha256"]} for row in files],
    }


def manifest_json(manifest: dict) -> bytes:
    """The manifest as served by the API and written into archives: the same bytes for the same version."""
    return (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()


def manifest_name(manifest: dict) -> str:
    """Where an archive puts the manifest: MANIFEST.json unless the version holds a file by that name."""
    paths = {entry["path"] for entry in manifest["files"]}
    return MANIFEST_NAME if MANIFEST_NAME not in paths else MANIFEST_FALLBACK_NAME


def manifest_etag(manifest: dict, variant: str = "") -> str:
    """A weak ETag naming the version's content (the same files, the same tag), for manifests and archives alike."""
    digest = hashlib.sha256(manifest_json(manifest)).hexdigest()[:32]
    return f'W/"{digest}{"-" + variant if variant else ""}"'
