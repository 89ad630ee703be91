"""Formats pipelines ship, validated by a real Celery worker: a sentence-transformers folder (the real
all-MiniLM-L6-v2), sharded safetensors checkpoints, ONNX graphs."""

import json

import pytest
from django.conf import settings

from apps.validation.models import ValidationJob
from tests.factories import register_version, upload
from tests.helpers import onnx_model, safetensors
from tests.minilm import folder_files, minilm_fixture  # noqa: F401

from .workers import Worker, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker():
    """A worker per test, like the other worker tests: one kept across transactional tests would keep content types
    from a database flushed since (and a new pool process per task waits ~5 s for the pool's upkeep)."""
    running = Worker(settings.CELERY_BROKER_URL, extra_args=("--loglevel=WARNING",)).start()
    yield running
    running.kill()


def _validated(version, worker) -> ValidationJob:
    job = version.validation_jobs.get()
    try:
        wait_for(lambda: ValidationJob.objects.get(pk=job.pk).is_finished, timeout=60, interval=0.1)
    except AssertionError:
        raise AssertionError(worker.stop()[-3000:]) from None
    job.refresh_from_db()
    return job


def _checks(job) -> dict:
    return {check.name: check for check in job.checks.all()}


# --- sentence-transformers -------------------------------------------------------------------------------


def test_the_real_minilm_folder_passes_and_reports_its_pooling_and_broken_copies_fail(worker, minilm, api_for, owner, model):
    files = folder_files(minilm)
    response = api_for(owner).post(
        f"/api/v1/models/{model.name}/versions/",
        {
            "files": [upload(path.rsplit("/", 1)[-1], data) for path, data in files.items()],
            "metadata": json.dumps({"flavor": "sentence-transformers", "artifacts": [{"path": path} for path in files]}),
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content
    job = _validated(model.versions.get(), worker)
    checks = _checks(job)
    assert job.status == "passed", {name: (c.verdict, c.summary) for name, c in checks.items()}
    assert checks["completeness"].summary == "all files a sentence-transformers version needs are present, for each of its 3 modules"
    inspection = checks["format_inspection"]
    assert inspection.details["pooling"] == {"1_Pooling/config.json": {"mode": "mean", "dimension": 384}}
    assert "1_Pooling/config.json: pooling mean, dimension 384" in inspection.summary
    assert "no architecture named" not in inspection.summary
    assert "config.json: BertModel" in inspection.summary
    body = api_for(owner).get(f"/api/v1/models/{model.name}/versions/1/").json()
    assert body["inspection"]["totals"]["parameters"] == 22_713_728
    assert body["inspection"]["sentence_transformers"]["modules"] == [
        {"type": "Transformer", "path": ""}, {"type": "Pooling", "path": "1_Pooling"}, {"type": "Normalize", "path": "2_Normalize"},
    ]

    # The same folder without 1_Pooling/ passed every check before the flavor existed.
    without_pooling = {path: data for path, data in files.items() if not path.startswith("1_Pooling/")}
    job = _validated(register_version(model, owner, files=without_pooling, flavor="sentence-transformers"), worker)
    completeness = _checks(job)["completeness"]
    assert job.status == "failed" and completeness.verdict == "fail"
    assert completeness.details["missing"] == ["module 1 (Pooling) needs its config.json in 1_Pooling/"]

    # No modules.json; a module type whose files are not known; a module path leaving the folder.
    job = _validated(register_version(model, owner, files={"config.json": b"{}"}, flavor="sentence-transformers"), worker)
    assert _checks(job)["completeness"].details["missing"] == ["sentence-transformers needs a modules.json at the top level"]
    modules = [{"idx": 0, "name": "0", "path": "0_Custom", "type": "my_package.Custom"}]
    job = _validated(register_version(model, owner, files={"modules.json": json.dumps(modules).encode()}, flavor="sentence-transformers"), worker)
    completeness = _checks(job)["completeness"]
    assert completeness.verdict == "warn" and completeness.details["modules_not_checked"] == ["Custom"]
    escaping = [{"idx": 0, "name": "0", "path": "../elsewhere", "type": "sentence_transformers.models.Pooling"}]
    job = _validated(register_version(model, owner, files={"modules.json": json.dumps(escaping).encode()}, flavor="sentence-transformers"), worker)
    assert "is not a plain relative folder" in _checks(job)["completeness"].summary


# --- sharded safetensors checkpoints ------------------------------------------------------------------------

SHARD_1 = safetensors({"embed": ("F32", [4, 3]), "layer.0": ("F16", [3, 3])})
SHARD_2 = safetensors({"layer.1": ("F32", [3, 3]), "head": ("F32", [3])})
INDEX = {
    "metadata": {"total_size": 48 + 18 + 36 + 12},
    "weight_map": {"embed": "model-00001-of-00002.safetensors", "layer.0": "model-00001-of-00002.safetensors",
                   "layer.1": "model-00002-of-00002.safetensors", "head": "model-00002-of-00002.safetensors"},
}


def _sharded(index=INDEX, **extra) -> dict[str, bytes]:
    return {
        "config.json": json.dumps({"architectures": ["Tiny"]}).encode(), "tokenizer.json": b"{}",
        "model.safetensors.index.json": json.dumps(index).encode(),
        "model-00001-of-00002.safetensors": SHARD_1, "model-00002-of-00002.safetensors": SHARD_2, **extra,
    }


BROKEN_CHECKPOINTS = [
    (_sharded(**{"model-00003-of-00003.safetensors": SHARD_2}), "completeness",
     "model-00003-of-00003.safetensors looks like a shard of model.safetensors.index.json, which does not name it"),
    ({k: v for k, v in _sharded().items() if k != "model-00002-of-00002.safetensors"}, "completeness",
     "model.safetensors.index.json names shard 'model-00002-of-00002.safetensors', which was not uploaded"),
    (_sharded({**INDEX, "weight_map": {**INDEX["weight_map"], "head": "model-00001-of-00002.safetensors"}}), "format_inspection",
     "model.safetensors.index.json maps 1 tensor(s) to a shard that does not hold them, e.g. 'head'"),
]


def test_a_sharded_checkpoint_is_inspected_as_one_model_and_must_match_its_index(worker, owner, model):
    job = _validated(register_version(model, owner, files=_sharded(), flavor="huggingface"), worker)
    checks = _checks(job)
    assert job.status == "passed", {name: (c.verdict, c.summary) for name, c in checks.items()}
    assert checks["format_inspection"].details["checkpoints"] == {
        "model.safetensors.index.json": {"shards": 2, "shards_read": 2, "tensors": 4, "parameters": 12 + 9 + 9 + 3, "dtypes": ["F16", "F32"], "tensor_bytes": 114},
    }
    assert "model.safetensors.index.json: one model in 2 shards, 33 parameters" in checks["format_inspection"].summary

    versions = [(register_version(model, owner, files=files, flavor="huggingface"), check, finding) for files, check, finding in BROKEN_CHECKPOINTS]
    for version, check, finding in versions:
        job = _validated(version, worker)
        assert job.status == "failed" and _checks(job)[check].verdict == "fail"
        assert finding in _checks(job)[check].summary


# --- ONNX ---------------------------------------------------------------------------------------------------


def test_an_onnx_graph_is_read_without_its_weights_and_shown_and_a_broken_one_fails(worker, owner, model, web_for):
    data = onnx_model(weights=1_000_000)  # 4 MB of weights the inspection steps over
    job = _validated(register_version(model, owner, files={"model.onnx": data}, flavor="onnx"), worker)
    inspection = _checks(job)["format_inspection"]
    assert job.status == "passed" and inspection.verdict == "pass", inspection.summary
    graph = inspection.details["onnx"]["model.onnx"]
    assert graph["opsets"] == {"ai.onnx": 17}
    assert graph["inputs"] == [{"name": "x", "type": "tensor(float)", "shape": ["batch", 4]}]
    assert graph["outputs"] == [{"name": "y", "type": "tensor(float)", "shape": ["batch", 250_000]}]
    assert (graph["nodes"], graph["initializers"], graph["operators"]) == (2, 1, {"MatMul": 1, "Relu": 1})
    assert len(data) > 4_000_000 and graph["bytes_read"] < 200_000
    assert inspection.summary == "model.onnx: ONNX opset 17, 1 input(s), 1 output(s), 2 nodes"
    page = web_for(owner).get(f"/models/{model.name}/versions/{job.version.number}/").content.decode()
    assert 'id="onnx-graph"' in page and "<code>ai.onnx 17</code>" in page
    assert "<tr data-onnx-input><td>input</td><td><code>x</code></td><td>tensor(float)</td><td>[batch, 4]</td></tr>" in page

    garbage = _validated(register_version(model, owner, files={"model.onnx": b"onnx-bytes"}, flavor="onnx"), worker)
    assert "model.onnx is not a readable ONNX model" in _checks(garbage)["format_inspection"].summary
    missing = _validated(register_version(model, owner, files={"model.onnx": onnx_model(external="model.onnx.data")}, flavor="onnx"), worker)
    assert _checks(missing)["format_inspection"].summary == "model.onnx keeps tensors in 'model.onnx.data', which was not uploaded"
    present = register_version(model, owner, files={"model.onnx": onnx_model(external="model.onnx.data"), "model.onnx.data": b"\x00" * 16}, flavor="onnx")
    assert _checks(_validated(present, worker))["format_inspection"].verdict == "pass"
    assert all(job.status == "failed" for job in (garbage, missing))

    many = _validated(register_version(model, owner, files={"model.onnx": _onnx_with_external_files(1500)}, flavor="onnx"), worker)
    many_inspection = _checks(many)["format_inspection"]
    assert many_inspection.summary == "model.onnx keeps tensors in 1500 files that were not uploaded, e.g. 'w0.bin'"
    assert len(many_inspection.details["onnx"]["model.onnx"]["external_data"]) == 1000
    assert many_inspection.details["onnx"]["model.onnx"]["external_data_files"] == 1500
    many_page = web_for(owner).get(f"/models/{model.name}/versions/{many.version.number}/").content.decode()
    assert "<code>w1005.bin</code> and others (1500 files)" in many_page and "<code>w101.bin</code>" not in many_page
    inputs = b"\x5a\x00" * 100_001  # empty graph inputs: two bytes each in the file, far more held in memory
    crowded = _validated(register_version(model, owner, files={"model.onnx": b"\x08\x07\x3a" + _varint(len(inputs)) + inputs}, flavor="onnx"), worker)
    crowded_inspection = _checks(crowded)["format_inspection"]
    assert crowded_inspection.verdict == "warn" and "more than 100,000 opsets, inputs, outputs and initializers" in crowded_inspection.summary


def _varint(value: int) -> bytes:
    out = b""
    while value > 0x7F:
        out, value = out + bytes([value & 0x7F | 0x80]), value >> 7
    return out + bytes([value])


def _onnx_with_external_files(count: int) -> bytes:
    """An ONNX model whose `count` initializers each name their own external data file."""
    from onnx import TensorProto, helper

    weights = []
    for number in range(count):
        weight = helper.make_tensor(f"w{number}", TensorProto.FLOAT, [1], [0.0])
        weight.ClearField("float_data")
        weight.data_location = TensorProto.EXTERNAL
        weight.external_data.add(key="location", value=f"w{number}.bin")
        weights.append(weight)
    graph = helper.make_graph([], "many", [], [helper.make_tensor_value_info("w0", TensorProto.FLOAT, [1])], initializer=weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
