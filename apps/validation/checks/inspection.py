"""Read safetensors headers (never the tensors) and config.json; record what was found on the version."""

import struct

from django.conf import settings

from ..models import Verdict
from .base import CheckContext, Outcome, TooDeeplyNested, loads_bounded

name = "format_inspection"
version = "1.1"

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


def parse_safetensors_header(head: bytes, file_size: int, read_more, check_budget=lambda: None) -> dict:
    """Validate a safetensors header. `read_more(n)` returns the next n bytes after the first 8.

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
    return {
        "tensors": len(spans),
        "dtypes": dtypes,
        "parameters": parameters,
        "data_bytes": data_size,
        "unreferenced_bytes": data_size - covered,
        "metadata": header.get("__metadata__") if isinstance(header.get("__metadata__"), dict) else {},
    }


def run(context: CheckContext) -> Outcome:
    found: dict = {"safetensors": {}, "config": {}}
    problems: list[str] = []
    warnings: list[str] = []
    for artifact in context.by_suffix(".safetensors"):
        try:
            with context.open(artifact) as handle:
                head = handle.read(8)
                summary = parse_safetensors_header(head, artifact.size, handle.read, context.check_budget)
        except CorruptSafetensors as exc:
            problems.append(f"{artifact.path}: {exc}")
            continue
        if summary["unreferenced_bytes"]:
            warnings.append(f"{artifact.path}: {summary['unreferenced_bytes']} data bytes belong to no tensor")
        found["safetensors"][artifact.path] = summary
    for artifact in context.artifacts:
        if artifact.path.rsplit("/", 1)[-1] != "config.json":
            continue
        if artifact.size > MAX_CONFIG_BYTES:
            warnings.append(f"{artifact.path} is too large to inspect")
            continue
        try:
            with context.open(artifact) as handle:
                config = loads_bounded(handle.read(MAX_CONFIG_BYTES + 1), max_depth=MAX_CONFIG_DEPTH)
        except TooDeeplyNested as exc:
            problems.append(f"{artifact.path}: {exc}")
            continue
        except (UnicodeDecodeError, ValueError) as exc:
            problems.append(f"{artifact.path} is not valid JSON: {exc}")
            continue
        if isinstance(config, dict):
            found["config"][artifact.path] = {key: config[key] for key in CONFIG_FIELDS if key in config}
    totals = {
        "parameters": sum(s["parameters"] for s in found["safetensors"].values()),
        "tensors": sum(s["tensors"] for s in found["safetensors"].values()),
        "dtypes": sorted({d for s in found["safetensors"].values() for d in s["dtypes"]}),
    }
    context.inspection.update({**found, "totals": totals})
    details = {**found, "totals": totals, "problems": problems, "warnings": warnings}
    if problems:
        return Outcome(Verdict.FAIL, "; ".join(problems)[:480], details)
    if not found["safetensors"] and not found["config"]:
        return Outcome(Verdict.SKIP, "no safetensors or config.json files to inspect", details)
    parts = []
    if found["safetensors"]:
        parts.append(f"{totals['tensors']} tensors, {totals['parameters']:,} parameters ({', '.join(totals['dtypes'])})")
    for path, fields in found["config"].items():
        architecture = ", ".join(fields.get("architectures") or []) or fields.get("model_type") or "no architecture named"
        parts.append(f"{path}: {architecture}")
    summary = "; ".join(parts)
    return Outcome(Verdict.WARN if warnings else "pass", summary + ("; " + "; ".join(warnings) if warnings else ""), details)
