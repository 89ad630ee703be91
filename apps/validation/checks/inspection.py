"""Read what the files say the model is, never its weights: safetensors headers (a sharded checkpoint as one model),
config.json (a sentence-transformers Pooling config as pooling), ONNX graphs' opsets, inputs and outputs. What was
found is recorded on the version (`inspection`)."""

import posixpath
import struct

from django.conf import settings

from ..models import Verdict
from . import sentence_transformers as st
from .base import CheckContext, Outcome, TooDeeplyNested, loads_bounded
from .onnx_graph import MAX_LISTED, CorruptOnnx, GraphTooLarge, read_onnx
from .shards import BadIndex, named_shards, read_index, shard_path

name = "format_inspection"
version = "1.2"

# Bits per element, as the safetensors format counts them (F4 packs two elements in a byte).
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F4": 4,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64, "C64": 64,
}
MAX_RANK = 64  # numpy's limit; PyTorch's is lower
MAX_DIMENSION = MAX_ELEMENTS = 2**64 - 1  # what the format's u64 sizes can hold
MAX_HEADER_DEPTH = 8  # a valid header nests 3 levels: header -> tensor entry -> shape or data_offsets
MAX_CONFIG_BYTES = 5 * 1024 * 1024
MAX_CONFIG_DEPTH = 64
CONFIG_FIELDS = ("architectures", "model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "torch_dtype", "max_position_embeddings")


class CorruptSafetensors(ValueError):
    pass


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _element_count(tensor: str, shape) -> int:
    """The number of elements a shape holds, refusing before any large arithmetic: rank, each dimension and the
    running product are bounded, so a hostile shape costs at most MAX_RANK multiplications of numbers under 2**128."""
    if not isinstance(shape, list):
        raise CorruptSafetensors(f"tensor '{tensor}' has a shape that is not a list")
    if len(shape) > MAX_RANK:
        raise CorruptSafetensors(f"tensor '{tensor}' has {len(shape)} dimensions; at most {MAX_RANK} are allowed")
    for dimension in shape:
        if not _is_int(dimension):
            raise CorruptSafetensors(f"tensor '{tensor}' has a shape dimension that is not a whole number")
        if dimension < 0:
            raise CorruptSafetensors(f"tensor '{tensor}' has a negative dimension ({dimension})")
        if dimension > MAX_DIMENSION:
            raise CorruptSafetensors(f"tensor '{tensor}' has a dimension that does not fit in 64 bits")
    if 0 in shape:
        return 0
    count = 1
    for dimension in shape:
        count *= dimension
        if count > MAX_ELEMENTS:
            raise CorruptSafetensors(f"tensor '{tensor}' has a shape with more elements than a 64-bit count can hold")
    return count


def safetensors_tensors(head: bytes, file_size: int, read_more) -> tuple[dict, list[tuple[str, str, list[int]]]]:
    """The validated header's summary (as `safetensors_header`) and its tensors: (name, dtype, shape) in the
    header's order. Raises CorruptSafetensors like it, so a page shows only what validation would accept."""
    summary, header = safetensors_header(head, file_size, read_more)
    tensors = [(name, info["dtype"], info["shape"]) for name, info in header.items() if name != "__metadata__"]
    return summary, tensors


def safetensors_header(head: bytes, file_size: int, read_more, check_budget=lambda: None) -> tuple[dict, dict]:
    """Validate a safetensors header: its summary and the header itself. `read_more(n)` returns the next n bytes
    after the first 8; `head` holds those 8.

    Every size is bounded before it is used: the header length by VALIDATION_SAFETENSORS_MAX_HEADER_BYTES, the
    JSON's nesting by MAX_HEADER_DEPTH, each shape by MAX_RANK and by the data bytes the file actually has.
    """
    if file_size < 8 or len(head) < 8:
        raise CorruptSafetensors("file is shorter than the 8-byte header length")
    (header_length,) = struct.unpack("<Q", head[:8])
    cap = settings.VALIDATION_SAFETENSORS_MAX_HEADER_BYTES
    if 8 + header_length > file_size:
        raise CorruptSafetensors(f"header length {header_length} does not fit in a file of {file_size} bytes")
    if header_length > cap:
        raise CorruptSafetensors(f"header length {header_length} is over the limit of {cap} bytes")
    raw = read_more(header_length)
    if len(raw) != header_length:
        raise CorruptSafetensors("file ends inside the header")
    try:
        header = loads_bounded(raw, max_depth=MAX_HEADER_DEPTH)
    except TooDeeplyNested as exc:
        raise CorruptSafetensors(f"header {exc}") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptSafetensors(f"header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise CorruptSafetensors("header is not a JSON object")
    data_size = file_size - 8 - header_length
    spans, dtypes, parameters = [], {}, 0
    for position, (tensor, info) in enumerate(header.items()):
        if position % 1024 == 0:
            check_budget()
        if tensor == "__metadata__":
            continue
        tensor = tensor if len(tensor) <= 80 else tensor[:77] + "..."  # names go into messages
        if not isinstance(info, dict) or set(info) - {"dtype", "shape", "data_offsets"}:
            raise CorruptSafetensors(f"tensor '{tensor}' has a malformed entry")
        dtype, offsets = info.get("dtype"), info.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
            raise CorruptSafetensors(f"tensor '{tensor}' has unknown dtype {str(dtype)[:40]!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)):
            raise CorruptSafetensors(f"tensor '{tensor}' has invalid data_offsets")
        begin, end = offsets
        if not 0 <= begin <= end <= data_size:
            raise CorruptSafetensors(f"tensor '{tensor}' has data_offsets outside the {data_size} data bytes")
        count = _element_count(tensor, info.get("shape"))
        bits = count * DTYPE_BITS[dtype]
        if bits % 8:
            raise CorruptSafetensors(f"tensor '{tensor}' has {count} {dtype} elements, which do not fill whole bytes")
        if bits // 8 != end - begin:
            raise CorruptSafetensors(f"tensor '{tensor}' spans {end - begin} bytes but {dtype} with {count} elements needs {bits // 8}")
        spans.append((begin, end, tensor))
        dtypes[dtype] = dtypes.get(dtype, 0) + 1
        parameters += count
    spans.sort()
    for (b1, e1, t1), (b2, e2, t2) in zip(spans, spans[1:]):
        if b2 < e1:
            raise CorruptSafetensors(f"tensors '{t1}' and '{t2}' overlap")
    covered = sum(e - b for b, e, _ in spans)
    summary = {
        "tensors": len(spans),
        "dtypes": dtypes,
        "parameters": parameters,
        "data_bytes": data_size,
        "unreferenced_bytes": data_size - covered,
        "metadata": header.get("__metadata__") if isinstance(header.get("__metadata__"), dict) else {},
    }
    return summary, header


def _read_safetensors(context: CheckContext, found: dict, problems: list, warnings: list) -> dict[str, set[str]]:
    """Each safetensors header into found["safetensors"]; returns the tensor names of each file."""
    names_by_path: dict[str, set[str]] = {}
    for artifact in context.by_suffix(".safetensors"):
        try:
            with context.open(artifact) as handle:
                summary, header = safetensors_header(handle.read(8), artifact.size, handle.read, context.check_budget)
        except CorruptSafetensors as exc:
            problems.append(f"{artifact.path}: {exc}")
            continue
        if summary["unreferenced_bytes"]:
            warnings.append(f"{artifact.path}: {summary['unreferenced_bytes']} data bytes belong to no tensor")
        found["safetensors"][artifact.path] = summary
        names_by_path[artifact.path] = set(header) - {"__metadata__"}
    return names_by_path


def _read_checkpoints(context: CheckContext, found: dict, problems: list, warnings: list, names_by_path: dict[str, set[str]]) -> None:
    """A sharded checkpoint as one model: its shards' totals, and each tensor where the index says it is.
    (Shards missing or extra are completeness's findings.)"""
    for index in context.by_suffix(".safetensors.index.json"):
        try:
            document = read_index(context, index)
        except BadIndex as exc:
            problems.append(str(exc))
            continue
        weight_map = document.get("weight_map", {})
        shards = named_shards(index.path, weight_map)
        read = [shard for shard in shards if shard in found["safetensors"]]
        summaries = [found["safetensors"][shard] for shard in read]
        tensor_bytes = sum(s["data_bytes"] - s["unreferenced_bytes"] for s in summaries)
        found.setdefault("checkpoints", {})[index.path] = {
            "shards": len(shards),
            "shards_read": len(read),
            "tensors": sum(s["tensors"] for s in summaries),
            "parameters": sum(s["parameters"] for s in summaries),
            "dtypes": sorted({d for s in summaries for d in s["dtypes"]}),
            "tensor_bytes": tensor_bytes,
        }
        if len(read) != len(shards):
            continue  # a shard is missing or unreadable: already a finding; the tensors cannot all be placed
        misplaced = sorted(t for t, shard in weight_map.items() if t not in names_by_path[shard_path(index.path, shard)])
        mapped = set(weight_map)
        unmapped = sorted(t for shard in read for t in names_by_path[shard] if t not in mapped)
        if misplaced:
            problems.append(f"{index.path} maps {len(misplaced)} tensor(s) to a shard that does not hold them, e.g. '{misplaced[0][:80]}'")
        if unmapped:
            warnings.append(f"{index.path} does not map {len(unmapped)} tensor(s) its shards hold (loaders ignore them), e.g. '{unmapped[0][:80]}'")
        total_size = (document.get("metadata") or {}).get("total_size") if isinstance(document.get("metadata"), dict) else None
        if isinstance(total_size, int) and not isinstance(total_size, bool) and total_size != tensor_bytes:
            warnings.append(f"{index.path} declares a total size of {total_size} bytes; its shards' tensors take {tensor_bytes}")


def _read_configs(context: CheckContext, found: dict, problems: list, warnings: list) -> None:
    """config.json files: a Pooling module's as pooling, another non-Transformer module's as that module, the rest
    as a Hugging Face model config."""
    try:
        modules = st.read_modules(context) or []
    except st.BadModules:
        modules = []  # completeness reports it
    if modules:
        found["sentence_transformers"] = {"modules": [{"type": m.kind, "path": m.folder} for m in modules]}
    module_of = {m.folder: m for m in modules}
    for artifact in context.artifacts:
        if posixpath.basename(artifact.path) != "config.json":
            continue
        if artifact.size > MAX_CONFIG_BYTES:
            warnings.append(f"{artifact.path} is too large to inspect")
            continue
        try:
            config = context.read_json(artifact, MAX_CONFIG_BYTES, max_depth=MAX_CONFIG_DEPTH)
        except TooDeeplyNested as exc:
            problems.append(f"{artifact.path}: {exc}")
            continue
        except (UnicodeDecodeError, ValueError) as exc:
            problems.append(f"{artifact.path} is not valid JSON: {exc}")
            continue
        if not isinstance(config, dict):
            continue
        module = module_of.get(posixpath.dirname(artifact.path))
        pooling = st.pooling_summary(config)
        if pooling is not None:
            found.setdefault("pooling", {})[artifact.path] = pooling
        elif module is not None and module.kind != "Transformer":
            plain = {k[:64]: v for k, v in config.items() if isinstance(v, (int, float, str, bool)) and not (isinstance(v, str) and len(v) > 200)}
            found.setdefault("module_configs", {})[artifact.path] = {"module": module.kind, **dict(list(plain.items())[:8])}
        else:
            found["config"][artifact.path] = {key: config[key] for key in CONFIG_FIELDS if key in config}


def _read_onnx(context: CheckContext, found: dict, problems: list, warnings: list) -> None:
    present = {a.path for a in context.artifacts}
    for artifact in context.by_suffix(".onnx"):
        try:
            with context.open(artifact) as handle:
                graph = read_onnx(handle, artifact.size, context.check_budget)
        except GraphTooLarge as exc:
            warnings.append(f"{artifact.path}: {exc}")
            continue
        except CorruptOnnx as exc:
            problems.append(f"{artifact.path} is not a readable ONNX model: {exc}")
            continue
        folder = posixpath.dirname(artifact.path)
        missing = [location for location in graph["external_data"] if posixpath.normpath(posixpath.join(folder, location)) not in present]
        if len(missing) == 1:
            problems.append(f"{artifact.path} keeps tensors in '{missing[0][:100]}', which was not uploaded")
        elif missing:
            problems.append(f"{artifact.path} keeps tensors in {len(missing)} files that were not uploaded, e.g. '{missing[0][:100]}'")
        graph["external_data_files"] = len(graph["external_data"])
        graph["external_data"] = graph["external_data"][:MAX_LISTED]
        found.setdefault("onnx", {})[artifact.path] = graph


def _describe(found: dict, totals: dict) -> list[str]:
    parts = []
    if found["safetensors"]:
        parts.append(f"{totals['tensors']} tensors, {totals['parameters']:,} parameters ({', '.join(totals['dtypes'])})")
    for path, checkpoint in found.get("checkpoints", {}).items():
        parts.append(f"{path}: one model in {checkpoint['shards']} shards, {checkpoint['parameters']:,} parameters")
    for path, fields in found["config"].items():
        architecture = ", ".join(fields.get("architectures") or []) or fields.get("model_type") or "no architecture named"
        parts.append(f"{path}: {architecture}")
    for path, pooling in found.get("pooling", {}).items():
        parts.append(f"{path}: pooling {pooling['mode']}, dimension {pooling['dimension'] if pooling['dimension'] is not None else 'not given'}")
    for path, module in found.get("module_configs", {}).items():
        parts.append(f"{path}: {module['module']} module")
    for path, graph in found.get("onnx", {}).items():
        opset = graph["opsets"].get("ai.onnx", "none")
        parts.append(f"{path}: ONNX opset {opset}, {len(graph['inputs'])} input(s), {len(graph['outputs'])} output(s), {graph['nodes']} nodes")
    return parts


def run(context: CheckContext) -> Outcome:
    found: dict = {"safetensors": {}, "config": {}}
    problems: list[str] = []
    warnings: list[str] = []
    names_by_path = _read_safetensors(context, found, problems, warnings)
    _read_checkpoints(context, found, problems, warnings, names_by_path)
    _read_configs(context, found, problems, warnings)
    _read_onnx(context, found, problems, warnings)
    totals = {
        "parameters": sum(s["parameters"] for s in found["safetensors"].values()),
        "tensors": sum(s["tensors"] for s in found["safetensors"].values()),
        "dtypes": sorted({d for s in found["safetensors"].values() for d in s["dtypes"]}),
    }
    context.inspection.update({**found, "totals": totals})
    details = {**found, "totals": totals, "problems": problems, "warnings": warnings}
    if problems:
        return Outcome(Verdict.FAIL, "; ".join(problems)[:480], details)
    parts = _describe(found, totals)
    if not parts and not warnings:
        return Outcome(Verdict.SKIP, "no safetensors, config.json or ONNX files to inspect", details)
    return Outcome(Verdict.WARN if warnings else Verdict.PASS, "; ".join(parts + warnings), details)
