"""Files each format needs, shard indexes naming exactly the shards that exist, sentence-transformers modules with
the files each one loads, and the model's own required patterns."""

import fnmatch

from apps.versions.models import Flavor

from ..models import Verdict
from . import sentence_transformers as st
from .base import CheckContext, Outcome
from .shards import BadIndex, extra_shards, named_shards, read_index

name = "completeness"
version = "1.1"

TOKENIZER_FILES = st.TOKENIZER_FILES

# flavor -> list of (requirement description, glob patterns of which at least one must match)
FORMAT_REQUIREMENTS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    Flavor.HUGGINGFACE: [
        ("a config.json", ("config.json", "*/config.json")),
        ("weights (*.safetensors or pytorch_model*.bin)", ("*.safetensors", "pytorch_model*.bin", "*/pytorch_model*.bin")),
        ("tokenizer or preprocessor files", tuple(f"*{n}" for n in (*TOKENIZER_FILES, "preprocessor_config.json"))),
    ],
    # Then each module modules.json lists needs its own files (see sentence_transformers.MODULE_FILES).
    Flavor.SENTENCE_TRANSFORMERS: [("a modules.json at the top level", (st.MODULES_FILE,))],
    Flavor.ONNX: [("an .onnx file", ("*.onnx",))],
    Flavor.SKLEARN: [("the model file (*.pkl, *.joblib, *.pickle or *.skops)", ("*.pkl", "*.joblib", "*.pickle", "*.skops"))],
    Flavor.PYTORCH: [("weights (*.pt, *.pth, *.bin or *.safetensors)", ("*.pt", "*.pth", "*.bin", "*.safetensors"))],
    Flavor.TENSORFLOW: [("a SavedModel or Keras file", ("saved_model.pb", "*/saved_model.pb", "*.h5", "*.keras"))],
    Flavor.XGBOOST: [("a booster file (*.json, *.ubj, *.model, *.bst)", ("*.json", "*.ubj", "*.model", "*.bst"))],
    Flavor.CUSTOM: [],
}


def _matches(paths: list[str], patterns) -> list[str]:
    return [p for p in paths if any(fnmatch.fnmatchcase(p, pattern) for pattern in patterns)]


def _module_problems(context: CheckContext, paths: list[str]) -> tuple[list[str], list[dict], list[str]]:
    """(missing files, the modules as read, module classes not checked) of a sentence-transformers version."""
    try:
        modules = st.read_modules(context)
    except st.BadModules as exc:
        return [str(exc)], [], []
    if modules is None:
        return [], [], []  # reported by FORMAT_REQUIREMENTS
    missing = [problem for module in modules for problem in st.module_problems(module, paths)]
    listed = [{"index": m.index, "type": m.type, "path": m.folder} for m in modules]
    unchecked = sorted({m.kind for m in modules if m.kind not in st.MODULE_FILES})
    return missing, listed, unchecked


def run(context: CheckContext) -> Outcome:
    paths = [a.path for a in context.artifacts]
    flavor = context.version.flavor
    missing: list[str] = []
    for description, patterns in FORMAT_REQUIREMENTS.get(flavor, []):
        if not _matches(paths, patterns):
            missing.append(f"{flavor} needs {description}")
    modules, unchecked = [], []
    if flavor == Flavor.SENTENCE_TRANSFORMERS:
        module_missing, modules, unchecked = _module_problems(context, paths)
        missing += module_missing
    for pattern in context.required_file_patterns:
        if not _matches(paths, [pattern]):
            missing.append(f"the model's policy requires a file matching '{pattern}'")

    shard_problems: list[str] = []
    present = set(paths)
    for index in context.by_suffix(".index.json"):
        try:
            weight_map = read_index(context, index).get("weight_map", {})
        except BadIndex as exc:
            shard_problems.append(str(exc))
            continue
        named = named_shards(index.path, weight_map)
        absent = [shard.rsplit("/", 1)[-1][:100] for shard in named if shard not in present]
        if len(absent) == 1:
            shard_problems.append(f"{index.path} names shard '{absent[0]}', which was not uploaded")
        elif absent:  # one finding, however many: an index of 50 MiB may name a million shards
            shard_problems.append(f"{index.path} names {len(absent)} shards that were not uploaded, e.g. '{absent[0]}'")
        for extra in extra_shards(index.path, named, paths):
            shard_problems.append(f"{extra} looks like a shard of {index.path}, which does not name it")
    problems = missing + shard_problems
    details = {"flavor": flavor, "missing": missing, "shard_problems": shard_problems}
    if flavor == Flavor.SENTENCE_TRANSFORMERS:
        details.update(modules=modules, modules_not_checked=unchecked)
    if problems:
        return Outcome(Verdict.FAIL, "; ".join(problems)[:480], details)
    if unchecked:
        return Outcome(Verdict.WARN, f"the files of module type(s) {', '.join(unchecked)} are not known, so not checked", details)
    if modules:
        return Outcome(Verdict.PASS, f"all files a {flavor} version needs are present, for each of its {len(modules)} modules", details)
    return Outcome(Verdict.PASS, f"all files a {flavor} version needs are present", details)
