"""The layout of a sentence-transformers folder: `modules.json` names the modules, each loaded from its own folder.

Read by `completeness` (each module's folder holds the files its class loads) and `format_inspection` (a module's
config is reported as what it is: a Pooling folder's config.json is pooling, not a model without an architecture).
"""

import posixpath
from dataclasses import dataclass

from .base import CheckContext, TooDeeplyNested

MODULES_FILE = "modules.json"
MAX_MODULES_BYTES = 1024 * 1024
MAX_MODULES = 256
WEIGHTS = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")

# Module class (the last part of its `type`) -> (what the folder must hold, file names of which one must be there).
# Normalize keeps no files (the all-MiniLM-L6-v2 repository has no 2_Normalize/ folder). A class not listed here
# (a custom module) is reported as not checked.
MODULE_FILES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "Transformer": [
        ("a config.json", ("config.json",)),
        ("weights (model.safetensors, a shard index or pytorch_model.bin)", ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")),
        ("tokenizer files", TOKENIZER_FILES),
    ],
    "Pooling": [("its config.json", ("config.json",))],
    "Dense": [("its config.json", ("config.json",)), ("its weights (model.safetensors or pytorch_model.bin)", WEIGHTS)],
    "LayerNorm": [("its config.json", ("config.json",)), ("its weights (model.safetensors or pytorch_model.bin)", WEIGHTS)],
    "Dropout": [("its config.json", ("config.json",))],
    "Normalize": [],
}

POOLING_MODES = {  # config key -> the name sentence-transformers gives the mode
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


class BadModules(ValueError):
    pass


@dataclass(frozen=True)
class Module:
    index: int
    kind: str  # the class name, e.g. "Pooling"
    type: str  # as modules.json names it, e.g. "sentence_transformers.models.Pooling"
    folder: str  # relative to the version's root; "" for the root itself


def read_modules(context: CheckContext) -> list[Module] | None:
    """The modules `modules.json` (at the version's root) lists, or None without one; `BadModules` if unreadable."""
    artifact = next((a for a in context.artifacts if a.path == MODULES_FILE), None)
    if artifact is None:
        return None
    if artifact.size > MAX_MODULES_BYTES:
        raise BadModules(f"{MODULES_FILE} is over {MAX_MODULES_BYTES // 1024} KiB")
    try:
        listed = context.read_json(artifact, MAX_MODULES_BYTES, max_depth=8)
    except (TooDeeplyNested, UnicodeDecodeError, ValueError) as exc:
        raise BadModules(f"{MODULES_FILE} is not valid JSON: {exc}") from exc
    if not isinstance(listed, list) or len(listed) > MAX_MODULES:
        raise BadModules(f"{MODULES_FILE} must be a list of at most {MAX_MODULES} modules")
    modules = []
    for position, entry in enumerate(listed):
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str) or not isinstance(entry.get("path", ""), str):
            raise BadModules(f"{MODULES_FILE}: module {position} needs a 'type' and a 'path' (strings)")
        folder = entry.get("path", "").strip("/")
        normal = posixpath.normpath(folder) if folder else ""
        if normal != folder or folder.startswith("..") or "\\" in folder:
            raise BadModules(f"{MODULES_FILE}: module {position} has the path {folder[:80]!r}, which is not a plain relative folder")
        modules.append(Module(index=position, kind=entry["type"].rsplit(".", 1)[-1][:100], type=entry["type"][:200], folder=folder))
    return modules


def files_in(paths: list[str], folder: str) -> set[str]:
    """Names of the files directly in `folder` (not in its subfolders)."""
    return {posixpath.basename(p) for p in paths if posixpath.dirname(p) == folder}


def module_problems(module: Module, paths: list[str]) -> list[str]:
    """What the module's folder lacks of the files its class loads."""
    present = files_in(paths, module.folder)
    where = f"{module.folder}/" if module.folder else "the root folder"
    return [
        f"module {module.index} ({module.kind}) needs {description} in {where}"
        for description, names in MODULE_FILES.get(module.kind, [])
        if not present.intersection(names)
    ]


def pooling_summary(config: dict) -> dict | None:
    """Mode and dimension of a Pooling module's config.json; None if the file is not a pooling config."""
    if not any(key in config for key in (*POOLING_MODES, "word_embedding_dimension", "pooling_mode")):
        return None
    if isinstance(config.get("pooling_mode"), str):  # written by some exporters instead of the flags
        modes = [config["pooling_mode"][:40]]
    else:
        modes = [name for key, name in POOLING_MODES.items() if config.get(key) is True]
    dimension = config.get("word_embedding_dimension")
    return {"mode": "+".join(modes) or "none", "dimension": dimension if isinstance(dimension, int) and not isinstance(dimension, bool) else None}
