"""Read safetensors headers (never the tensors) and config.json; record what was found on the version."""

import json
import math
import struct

from .base import CheckContext, Outcome

name = "format_inspection"
version = "1.0"

DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "F4": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}
MAX_HEADER_BYTES = 100 * 1024 * 1024
MAX_CONFIG_BYTES = 5 * 1024 * 1024
CONFIG_FIELDS = ("architectures", "model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "torch_dtype", "max_position_embeddings")


class CorruptSafetensors(ValueError):
    pass


def parse_safetensors_header(head: bytes, file_size: int, read_more) -> dict:
    """Validate a safetensors header. `read_more(n)` returns the next n bytes after the first 8."""
    if file_size < 8 or len(head) < 8:
        raise CorruptSafetensors("file is shorter than the 8-byte header length")
    (header_length,) = struct.unpack("<Q", head[:8])
    if header_length > MAX_HEADER_BYTES or 8 + header_length > file_size:
        raise CorruptSafetensors(f"header length {header_length} does not fit in a file of {file_size} bytes")
    raw = read_more(header_length)
    if len(raw) != header_length:
        raise CorruptSafetensors("file ends inside the header")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptSafetensors(f"header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise CorruptSafetensors("header is not a JSON object")
    data_size = file_size - 8 - header_length
    spans, dtypes, parameters = [], {}, 0
    for tensor, info in header.items():
        if tensor == "__metadata__":
            continue
        if not isinstance(info, dict) or set(info) - {"dtype", "shape", "data_offsets"}:
            raise CorruptSafetensors(f"tensor '{tensor}' has a malformed entry")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in DTYPE_BYTES:
            raise CorruptSafetensors(f"tensor '{tensor}' has unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise CorruptSafetensors(f"tensor '{tensor}' has an invalid shape")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise CorruptSafetensors(f"tensor '{tensor}' has invalid data_offsets")
        begin, end = offsets
        if not 0 <= begin <= end <= data_size:
            raise CorruptSafetensors(f"tensor '{tensor}' offsets [{begin}, {end}] lie outside the {data_size} data bytes")
        count = math.prod(shape)
        if (count * DTYPE_BYTES[dtype]) != end - begin and dtype != "F4":
            raise CorruptSafetensors(f"tensor '{tensor}' spans {end - begin} bytes but {dtype}{shape} needs {count * DTYPE_BYTES[dtype]}")
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
                summary = parse_safetensors_header(head, artifact.size, handle.read)
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
                config = json.loads(handle.read().decode("utf-8"))
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
        return Outcome("fail", "; ".join(problems)[:480], details)
    if not found["safetensors"] and not found["config"]:
        return Outcome("skip", "no safetensors or config.json files to inspect", details)
    parts = []
    if found["safetensors"]:
        parts.append(f"{totals['tensors']} tensors, {totals['parameters']:,} parameters ({', '.join(totals['dtypes'])})")
    for path, fields in found["config"].items():
        architecture = ", ".join(fields.get("architectures") or []) or fields.get("model_type") or "no architecture named"
        parts.append(f"{path}: {architecture}")
    summary = "; ".join(parts)
    return Outcome("warn" if warnings else "pass", summary + ("; " + "; ".join(warnings) if warnings else ""), details)
