"""Small test tools shared across test modules: counting a page's queries, running work in racing threads, files the
checks inspect (safetensors, a pickle that runs a command), a production request awaiting its approver."""

import json
import os
import struct
import threading

from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from apps.approvals.services import transition_request_create
from apps.validation.services import validation_run
from tests.factories import register_version


def queries_for(client, url: str) -> int:
    """How many SQL queries one GET of `url` runs (it must answer 200)."""
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(ctx.captured_queries)


def in_threads(count: int, work) -> list[BaseException]:
    """Run work(0..count-1) in threads released together by a barrier; return what they raised."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as exc:  # collected and asserted on by the caller
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


class RunsSystem:
    """Unpickling this runs a shell command: the payload the unsafe-serialization scan must flag."""

    def __reduce__(self):
        return (os.system, ("echo owned",))


def safetensors_with_header(header, data: bytes = b"") -> bytes:
    """A .safetensors file with exactly this header (a dict, or raw JSON bytes) followed by `data`."""
    encoded = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(encoded)) + encoded + data


def safetensors(tensors: dict[str, tuple[str, list[int]]]) -> bytes:
    """A small valid safetensors file (zeros) so the format inspection has something real to read."""
    sizes = {"F32": 4, "F16": 2, "BF16": 2}
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        length = sizes[dtype]
        for dim in shape:
            length *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + length]}
        offset += length
    return safetensors_with_header(header, bytes(offset))


def eighty_thousand_dimensions() -> bytes:
    """The header from the report: 1.7 MB, one tensor whose shape has 80,000 twenty-digit dimensions."""
    shape = [10**19 + i for i in range(80_000)]
    return safetensors_with_header(json.dumps({"w": {"dtype": "F32", "shape": shape, "data_offsets": [0, 4]}}).encode(), b"\x00" * 4)


def pending_production_request(model, owner, **metadata):
    """Register a version, validate it, take it to staging and ask for production: a request waiting for its approver."""
    version = register_version(model, owner, **metadata)
    validation_run(job_id=version.validation_jobs.get().pk)
    transition_request_create(version=version, to_stage="staging", actor=owner, justification="ready")
    return transition_request_create(version=version, to_stage="production", actor=owner, justification="Ship: +2 points")


def onnx_model(*, weights: int = 16, opset: int = 17, external: str | None = None) -> bytes:
    """A real ONNX model built with onnx.helper: x[batch, 4] -> MatMul(W[4, weights/4]) -> Relu -> y, W embedded
    (or named as kept in the file `external`)."""
    import onnx
    from onnx import TensorProto, helper

    columns = max(1, weights // 4)
    values = [0.5] * (4 * columns)
    weight = helper.make_tensor("W", TensorProto.FLOAT, [4, columns], struct.pack(f"<{len(values)}f", *values), raw=True)
    if external is not None:
        weight.ClearField("raw_data")
        weight.data_location = TensorProto.EXTERNAL
        weight.external_data.add(key="location", value=external)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", columns])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="registry-tests")
    if external is None:
        onnx.checker.check_model(model)  # a model the reference tooling accepts
    return model.SerializeToString()
