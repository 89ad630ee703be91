"""Files each format needs, shard indexes naming only files that exist, and the model's own required patterns."""

import fnmatch
import json
import posixpath

from ..models import Verdict
from .base import CheckContext, Outcome

name = "completeness"
version = "1.0"

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")
MAX_INDEX_BYTES = 50 * 1024 * 1024

# flavor -> list of (requirement description, glob patterns of which at least one must match)
FORMAT_REQUIREMENTS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "huggingface": [
        ("a config.json", ("config.json", "*/config.json")),
        ("weights (*.safetensors or pytorch_model*.bin)", ("*.safetensors", "pytorch_model*.bin", "*/pytorch_model*.bin")),
        ("tokenizer or preprocessor files", tuple(f"*{n}" for n in (*TOKENIZER_FILES, "preprocessor_config.json"))),
    ],
    "onnx": [("an .onnx file", ("*.onnx",))],
    "sklearn": [("the model file (*.pkl, *.joblib, *.pickle or *.skops)", ("*.pkl", "*.joblib", "*.pickle", "*.skops"))],
    "pytorch": [("weights (*.pt, *.pth, *.bin or *.safetensors)", ("*.pt", "*.pth", "*.bin", "*.safetensors"))],
    "tensorflow": [("a SavedModel or Keras file", ("saved_model.pb", "*/saved_model.pb", "*.h5", "*.keras"))],
    "xgboost": [("a booster file (*.json, *.ubj, *.model, *.bst)", ("*.json", "*.ubj", "*.model", "*.bst"))],
    "custom": [],
}


def _matches(paths: list[str], patterns) -> list[str]:
    return [p for p in paths if any(fnmatch.fnmatchcase(p, pattern) for pattern in patterns)]


def run(context: CheckContext) -> Outcome:
    paths = [a.path for a in context.artifacts]
    missing: list[str] = []
    for description, patterns in FORMAT_REQUIREMENTS.get(context.version.flavor, []):
        if not _matches(paths, patterns):
            missing.append(f"{context.version.flavor} needs {description}")
    for pattern in context.required_file_patterns:
        if not _matches(paths, [pattern]):
            missing.append(f"the model's policy requires a file matching '{pattern}'")

    shard_problems: list[str] = []
    present = set(paths)
    for index in context.by_suffix(".index.json"):
        if index.size > MAX_INDEX_BYTES:
            shard_problems.append(f"{index.path} is too large to be a shard index")
            continue
        try:
            with context.open(index) as handle:
                weight_map = json.loads(handle.read().decode("utf-8")).get("weight_map", {})
        except (ValueError, AttributeError) as exc:
            shard_problems.append(f"{index.path} is not a valid shard index: {exc}")
            continue
        if not isinstance(weight_map, dict):
            shard_problems.append(f"{index.path}: weight_map is not an object")
            continue
        directory = posixpath.dirname(index.path)
        for shard in sorted(set(map(str, weight_map.values()))):
            expected = posixpath.join(directory, shard) if directory else shard
            if expected not in present:
                shard_problems.append(f"{index.path} names shard '{shard}', which was not uploaded")
    problems = missing + shard_problems
    details = {"flavor": context.version.flavor, "missing": missing, "shard_problems": shard_problems}
    if problems:
        return Outcome(Verdict.FAIL, "; ".join(problems)[:480], details)
    return Outcome(Verdict.PASS, f"all files a {context.version.flavor} version needs are present", details)
