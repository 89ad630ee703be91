#!/usr/bin/env python
"""Benchmark: reading an ONNX model's opsets, inputs and outputs as format inspection does, beside `onnx.load`.

Builds a model of 200 MatMul nodes, each with a 1 MiB float initializer (210 MB; 50 with --quick), then reads it
with `apps.validation.checks.onnx_graph.read_onnx` (the protobuf walked field by field, weights skipped by seeking)
and with `onnx.load(..., load_external_data=False)` (what reading the graph costs the usual way), each best of three.
Targets: the walk reads at most 5% of the file and takes at most a tenth of `onnx.load`'s time.

    .venv/bin/python bench/onnx_inspection.py --quick
    .venv/bin/python bench/onnx_inspection.py
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build(path: Path, layers: int) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, weights, previous = [], [], "x"
    for index in range(layers):
        weights.append(numpy_helper.from_array(np.full((512, 512), index, dtype=np.float32), name=f"W{index}"))
        nodes.append(helper.make_node("MatMul", [previous, f"W{index}"], [f"h{index}"]))
        previous = f"h{index}"
    graph = helper.make_graph(
        nodes, "bench", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 512])],
        [helper.make_tensor_value_info(previous, TensorProto.FLOAT, ["batch", 512])], initializer=weights,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def best_of(runs: int, work) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 layers (53 MB) instead of 200 (210 MB)")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry_site.settings.local")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import onnx

    from apps.validation.checks.onnx_graph import read_onnx

    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as workdir:
        path = Path(workdir) / "model.onnx"
        build(path, 50 if args.quick else 200)
        size = path.stat().st_size

        def walk():
            with open(path, "rb") as handle:
                return read_onnx(handle, size)

        walk_seconds, found = best_of(3, walk)
        load_seconds, _ = best_of(3, lambda: onnx.load(str(path), load_external_data=False))
    share, speed = found["bytes_read"] / size, walk_seconds / load_seconds
    print(json.dumps({
        "file_bytes": size, "nodes": found["nodes"], "initializers": found["initializers"],
        "walk_ms": round(walk_seconds * 1000, 1), "walk_bytes_read": found["bytes_read"], "share_of_file_read": round(share, 4),
        "onnx_load_ms": round(load_seconds * 1000, 1), "walk_over_load": round(speed, 3),
        "targets": {"share_of_file_read <= 0.05": share <= 0.05, "walk_over_load <= 0.1": speed <= 0.1},
    }, indent=2))
    return 0 if share <= 0.05 and speed <= 0.1 else 1


if __name__ == "__main__":
    sys.exit(main())
