"""Sharded checkpoints: a `*.index.json` (e.g. `model.safetensors.index.json`) maps each tensor to the shard file
holding it. Read by `completeness` (every shard named is there, no other shard of the same checkpoint is) and by
`format_inspection` (the shards read as one model)."""

import posixpath
import re

from apps.versions.models import Artifact

from .base import CheckContext, TooDeeplyNested

MAX_INDEX_BYTES = 50 * 1024 * 1024
MAX_INDEX_DEPTH = 8  # a valid index nests 2 levels: index -> weight_map or metadata


class BadIndex(ValueError):
    pass


def read_index(context: CheckContext, index: Artifact) -> dict:
    """The index's JSON object, checked: `weight_map` maps tensor names to shard file names. `BadIndex` otherwise."""
    if index.size > MAX_INDEX_BYTES:
        raise BadIndex(f"{index.path} is too large to be a shard index")
    try:
        document = context.read_json(index, MAX_INDEX_BYTES, max_depth=MAX_INDEX_DEPTH)
    except (TooDeeplyNested, UnicodeDecodeError, ValueError) as exc:
        raise BadIndex(f"{index.path} is not a valid shard index: {exc}") from exc
    if not isinstance(document, dict):
        raise BadIndex(f"{index.path} is not a valid shard index: not a JSON object")
    weight_map = document.get("weight_map", {})
    if not isinstance(weight_map, dict) or not all(isinstance(shard, str) for shard in weight_map.values()):
        raise BadIndex(f"{index.path}: weight_map is not an object of tensor names to file names")
    return document


def shard_path(index_path: str, shard: str) -> str:
    directory = posixpath.dirname(index_path)
    return posixpath.join(directory, shard) if directory else shard


def named_shards(index_path: str, weight_map: dict) -> list[str]:
    """The paths of the shards the index names, in order."""
    return sorted({shard_path(index_path, shard) for shard in weight_map.values()})


def extra_shards(index_path: str, named: list[str], paths: list[str]) -> list[str]:
    """Files beside the index named like its shards (`model-00003-of-00003.safetensors` for
    `model.safetensors.index.json`) that the index does not name."""
    checkpoint = posixpath.basename(index_path).removesuffix(".index.json")  # model.safetensors
    stem, dot, extension = checkpoint.rpartition(".")
    if not dot:
        return []
    pattern = re.compile(rf"{re.escape(stem)}-\d+-of-\d+\.{re.escape(extension)}")
    directory = posixpath.dirname(index_path)
    wanted = set(named)
    return sorted(p for p in paths if posixpath.dirname(p) == directory and pattern.fullmatch(posixpath.basename(p)) and p not in wanted)
