"""Read an ONNX model's opsets, inputs and outputs without loading its weights.

`onnx.load` parses the whole protobuf, initializers (the weights) included, into memory. Instead the file's protobuf
fields are walked here: the small messages that say what the model is (opset imports, graph inputs and outputs) are
decoded with the `onnx` package's own classes; nodes and initializers are stepped through field by field, their
payloads (raw tensor data, attributes) skipped by seeking, never read. External data files are never opened, only
named. What is actually read is capped by VALIDATION_ONNX_MAX_READ_BYTES.
"""

from django.conf import settings

MAX_MESSAGE_BYTES = 1024 * 1024  # one opset import, input or output description
MAX_TYPE_DEPTH = 8  # sequence(map(int64, sequence(tensor(float)))) and the like
MAX_LISTED = 1000  # inputs, outputs or external data files reported
# Opset imports, graph inputs, outputs and initializers held while walking: a few bytes each in the file, hundreds in
# memory, so 64 MiB of empty inputs would otherwise take gigabytes of the worker's memory.
MAX_ENTRIES = 100_000
WINDOW = 16 * 1024  # read ahead per refill: initializer headers are small, their data is skipped

# Field numbers from onnx.proto3.
MODEL_IR_VERSION, MODEL_PRODUCER_NAME, MODEL_PRODUCER_VERSION, MODEL_GRAPH, MODEL_OPSET_IMPORT = 1, 2, 3, 7, 8
GRAPH_NODE, GRAPH_NAME, GRAPH_INITIALIZER, GRAPH_INPUT, GRAPH_OUTPUT, GRAPH_SPARSE_INITIALIZER = 1, 2, 5, 11, 12, 15
NODE_OP_TYPE = 4
TENSOR_NAME, TENSOR_EXTERNAL_DATA, TENSOR_DATA_LOCATION = 8, 13, 14
ENTRY_KEY, ENTRY_VALUE = 1, 2
EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


class CorruptOnnx(ValueError):
    pass


class GraphTooLarge(CorruptOnnx):
    """Not proof of corruption: the graph's structure alone is larger than the read limit."""


class _Wire:
    """Protobuf wire format over a seekable binary file: reads through a small window, skips by seeking."""

    def __init__(self, handle, size: int, check_budget, max_read: int):
        self.handle, self.size, self.check_budget, self.max_read = handle, size, check_budget, max_read
        self.position = 0  # of the next byte to parse, in the file
        self.window, self.window_start = b"", 0
        self.bytes_read = 0

    def _fill(self, needed: int) -> None:
        offset = self.position - self.window_start
        if 0 <= offset and offset + needed <= len(self.window):
            return
        self.check_budget()
        if self.position + needed > self.size:
            raise CorruptOnnx("the file ends inside a field")
        remaining = self.max_read - self.bytes_read
        if needed > remaining:
            raise GraphTooLarge(f"reading its graph took more than the limit of {self.max_read} bytes (VALIDATION_ONNX_MAX_READ_BYTES)")
        want = min(max(needed, WINDOW), remaining, self.size - self.position)
        self.handle.seek(self.position)
        self.window, self.window_start = self.handle.read(want), self.position
        self.bytes_read += len(self.window)
        if len(self.window) < needed:
            raise CorruptOnnx("the file ends inside a field")

    def take(self, count: int) -> bytes:
        self._fill(count)
        offset = self.position - self.window_start
        self.position += count
        return self.window[offset:offset + count]

    def varint(self) -> int:
        value = 0
        for shift in range(0, 70, 7):
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
        raise CorruptOnnx("a number is longer than 10 bytes")

    def fields(self, end: int):
        """(field number, wire type, length or value) of each field up to `end`; LENGTH fields are left unread:
        the caller reads them or calls `skip_to`."""
        count = 0
        while self.position < end:
            count += 1
            if count % 4096 == 0:
                self.check_budget()
            key = self.varint()
            number, wire = key >> 3, key & 7
            if number == 0:
                raise CorruptOnnx("field number 0")
            if wire == VARINT:
                yield number, wire, self.varint()
            elif wire == FIXED64:
                self.skip_to(self.position + 8, end)
                yield number, wire, None
            elif wire == FIXED32:
                self.skip_to(self.position + 4, end)
                yield number, wire, None
            elif wire == LENGTH:
                length = self.varint()
                if self.position + length > end:
                    raise CorruptOnnx(f"a field of {length} bytes runs past the end of its message")
                yield number, wire, length
            else:
                raise CorruptOnnx(f"wire type {wire} (groups or garbage), which ONNX files never use")
        if self.position != end:
            raise CorruptOnnx("a field runs past the end of its message")

    def skip_to(self, target: int, end: int) -> None:
        if target > end:
            raise CorruptOnnx("a field runs past the end of its message")
        self.position = target


def _message(wire: _Wire, length: int, end: int, proto_class, what: str):
    if length > MAX_MESSAGE_BYTES:
        raise CorruptOnnx(f"a {what} of {length} bytes is over the limit of {MAX_MESSAGE_BYTES}")
    raw = wire.take(length)
    try:
        return proto_class.FromString(raw)
    except Exception as exc:  # protobuf's DecodeError and its C++ runtime's errors
        raise CorruptOnnx(f"a {what} does not decode: {exc}") from exc


def _type_text(type_proto, depth: int = 0) -> str:
    import onnx

    if depth > MAX_TYPE_DEPTH:
        return "…"
    kind = type_proto.WhichOneof("value")
    if kind in ("tensor_type", "sparse_tensor_type"):
        element = getattr(type_proto, kind).elem_type
        name = onnx.TensorProto.DataType.Name(element).lower() if element in onnx.TensorProto.DataType.values() else f"type {element}"
        return f"tensor({name})" if kind == "tensor_type" else f"sparse_tensor({name})"
    if kind == "sequence_type":
        return f"sequence({_type_text(type_proto.sequence_type.elem_type, depth + 1)})"
    if kind == "optional_type":
        return f"optional({_type_text(type_proto.optional_type.elem_type, depth + 1)})"
    if kind == "map_type":
        key = onnx.TensorProto.DataType.Name(type_proto.map_type.key_type).lower() if type_proto.map_type.key_type in onnx.TensorProto.DataType.values() else "?"
        return f"map({key}, {_type_text(type_proto.map_type.value_type, depth + 1)})"
    return "unknown"


def _shape(type_proto) -> list | None:
    kind = type_proto.WhichOneof("value")
    if kind not in ("tensor_type", "sparse_tensor_type") or not getattr(type_proto, kind).HasField("shape"):
        return None  # unknown rank
    dims = []
    for dim in getattr(type_proto, kind).shape.dim:
        which = dim.WhichOneof("value")
        dims.append(dim.dim_value if which == "dim_value" else dim.dim_param[:64] if which == "dim_param" else "?")
    return dims


def _value_info(info) -> dict:
    return {"name": info.name[:200], "type": _type_text(info.type), "shape": _shape(info.type)}


def _tensor_facts(wire: _Wire, end: int) -> tuple[str, str | None]:
    """(name, external data file or None) of a TensorProto, stepping over its data."""
    name, location, external = "", None, False
    for number, kind, value in wire.fields(end):
        if kind != LENGTH:
            if number == TENSOR_DATA_LOCATION:
                external = value == EXTERNAL
            continue
        field_end = wire.position + value
        if number == TENSOR_NAME and value <= MAX_MESSAGE_BYTES:
            name = wire.take(value).decode("utf-8", "replace")
        elif number == TENSOR_EXTERNAL_DATA:
            key = entry_value = None
            for entry_number, entry_kind, length in wire.fields(field_end):
                if entry_kind == LENGTH and entry_number in (ENTRY_KEY, ENTRY_VALUE) and length <= 4096:
                    text = wire.take(length).decode("utf-8", "replace")
                    key, entry_value = (text, entry_value) if entry_number == ENTRY_KEY else (key, text)
                elif entry_kind == LENGTH:
                    wire.skip_to(wire.position + length, field_end)
            if key == "location":
                location = entry_value
        else:
            wire.skip_to(field_end, end)
    return name, location if external else None


def _op_type(wire: _Wire, end: int) -> str:
    op_type = ""
    for number, kind, value in wire.fields(end):
        if kind == LENGTH:
            if number == NODE_OP_TYPE and value <= 256:
                op_type = wire.take(value).decode("utf-8", "replace")
            else:
                wire.skip_to(wire.position + value, end)
    return op_type


def read_onnx(handle, size: int, check_budget=lambda: None) -> dict:
    """What an ONNX file says it is: IR version, producer, opsets, graph inputs (initializers excluded) and outputs,
    node and initializer counts, operator counts and the external data files its tensors name. `CorruptOnnx` if the
    file is not a protobuf ModelProto with a graph."""
    import onnx

    wire = _Wire(handle, size, check_budget, settings.VALIDATION_ONNX_MAX_READ_BYTES)
    found: dict = {"ir_version": None, "producer": "", "opsets": {}, "inputs": [], "outputs": [], "nodes": 0, "initializers": 0, "operators": {}, "external_data": []}
    inputs, initializer_names, external = [], set(), set()
    producer, producer_version, graphs, entries = "", "", 0, 0

    def counted() -> None:
        nonlocal entries
        entries += 1
        if entries > MAX_ENTRIES:
            raise GraphTooLarge(f"it lists more than {MAX_ENTRIES:,} opsets, inputs, outputs and initializers, more than inspection holds")

    for number, kind, value in wire.fields(size):
        if number == MODEL_IR_VERSION and kind == VARINT:
            found["ir_version"] = value
        elif kind != LENGTH:
            continue
        elif number == MODEL_OPSET_IMPORT:
            counted()
            opset = _message(wire, value, size, onnx.OperatorSetIdProto, "opset import")
            found["opsets"][opset.domain[:100] or "ai.onnx"] = opset.version
        elif number in (MODEL_PRODUCER_NAME, MODEL_PRODUCER_VERSION) and value <= 4096:
            text = wire.take(value).decode("utf-8", "replace")
            producer, producer_version = (text, producer_version) if number == MODEL_PRODUCER_NAME else (producer, text)
        elif number == MODEL_GRAPH:
            graphs += 1
            graph_end = wire.position + value
            for g_number, g_kind, g_value in wire.fields(graph_end):
                if g_kind != LENGTH:
                    continue
                field_end = wire.position + g_value
                if g_number == GRAPH_NODE:
                    found["nodes"] += 1
                    op_type = _op_type(wire, field_end)[:64] or "?"
                    found["operators"][op_type] = found["operators"].get(op_type, 0) + 1
                elif g_number == GRAPH_INITIALIZER:
                    counted()
                    found["initializers"] += 1
                    name, location = _tensor_facts(wire, field_end)
                    initializer_names.add(name)
                    if location is not None:
                        external.add(location[:300])
                elif g_number == GRAPH_SPARSE_INITIALIZER:
                    found["initializers"] += 1
                    wire.skip_to(field_end, graph_end)
                elif g_number in (GRAPH_INPUT, GRAPH_OUTPUT):
                    counted()
                    info = _value_info(_message(wire, g_value, graph_end, onnx.ValueInfoProto, "graph input or output"))
                    (inputs if g_number == GRAPH_INPUT else found["outputs"]).append(info)
                else:
                    wire.skip_to(field_end, graph_end)
        else:
            wire.skip_to(wire.position + value, size)
    if not graphs:
        raise CorruptOnnx("no graph: this is not an ONNX model")
    if found["ir_version"] is None:
        raise CorruptOnnx("no IR version: this is not an ONNX model")
    # Before IR version 4 every initializer was also listed as a graph input; those are weights, not inputs.
    found["inputs"] = [info for info in inputs if info["name"] not in initializer_names][:MAX_LISTED]
    found["outputs"] = found["outputs"][:MAX_LISTED]
    found["producer"] = f"{producer} {producer_version}".strip()[:200]
    found["external_data"] = sorted(external)
    found["operators"] = dict(sorted(found["operators"].items(), key=lambda item: (-item[1], item[0]))[:50])
    found["bytes_read"] = wire.bytes_read
    return found
