"""Each check on good and bad inputs, through the job a worker runs (`validation_run`)."""

import io
import json
import os
import pickle
import struct
import zipfile
from collections import OrderedDict

import pytest

from apps.validation.checks.pickle_scan import scan_file
from apps.validation.models import ValidationJob
from apps.validation.services import validation_policy_update, validation_run
from apps.versions.blobs import artifact_storage, blob_key
from apps.models.management.commands.seed_demo import float32s, safetensors_bytes
from tests.factories import register_version
from tests.helpers import RunsSystem, onnx_model

pytestmark = pytest.mark.django_db


class RunsEval:
    def __reduce__(self):
        return (eval, ("1+1",))


def _validate(model, owner, files, **metadata) -> ValidationJob:
    version = register_version(model, owner, files=files, **metadata)
    job = ValidationJob.objects.get(version=version)
    validation_run(job_id=job.pk)
    job.refresh_from_db()
    return job


def _check(job, name):
    return job.checks.get(name=name)


GOOD_WEIGHTS = safetensors_bytes({"w": ("F32", [2, 3], float32s([0.0] * 6)), "b": ("F16", [3], b"\x00" * 6)})
HF_FILES = {"config.json": json.dumps({"architectures": ["Bert"], "hidden_size": 3}).encode(), "model.safetensors": GOOD_WEIGHTS, "tokenizer.json": b"{}"}


def test_a_complete_huggingface_version_passes_and_is_inspected(model, owner):
    job = _validate(model, owner, HF_FILES, flavor="huggingface", dependencies={"requirements": "torch==2.3.1\n"})
    assert job.status == "passed", [(c.name, c.verdict, c.summary) for c in job.checks.all()]
    assert [c.name for c in job.checks.all()] == ["integrity", "completeness", "format_inspection", "unsafe_serialization", "dependencies"]
    inspection = _check(job, "format_inspection").details["safetensors"]["model.safetensors"]
    assert inspection == {"tensors": 2, "dtypes": {"F32": 1, "F16": 1}, "parameters": 9, "data_bytes": 30, "unreferenced_bytes": 0, "metadata": {"format": "pt"}}
    job.version.refresh_from_db()
    assert job.version.inspection["totals"]["parameters"] == 9
    assert job.version.inspection["config"]["config.json"]["architectures"] == ["Bert"]
    assert all(c.checker_version for c in job.checks.all())


def test_integrity_catches_a_blob_changed_after_upload(model, owner):
    version = register_version(model, owner, files={"w.bin": b"original"})
    path = artifact_storage().path(blob_key(version.artifacts.get().sha256))
    with open(path, "wb") as handle:
        handle.write(b"tampered")
    job = version.validation_jobs.get()
    validation_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and _check(job, "integrity").verdict == "fail"
    assert "SHA-256" in _check(job, "integrity").details["problems"][0]["problem"]


def test_a_truncated_safetensors_file_fails_inspection(model, owner):
    job = _validate(model, owner, {**HF_FILES, "model.safetensors": GOOD_WEIGHTS[:-10]}, flavor="huggingface")
    check = _check(job, "format_inspection")
    assert job.status == "failed" and check.verdict == "fail" and "outside" in check.summary


@pytest.mark.parametrize(
    "header, fragment",
    [
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, "overlap"),
        ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}, "needs 16"),
        ({"a": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 1]}}, "unknown dtype"),
    ],
)
def test_corrupt_safetensors_headers_fail(model, owner, header, fragment):
    encoded = json.dumps(header).encode()
    data = struct.pack("<Q", len(encoded)) + encoded + b"\x00" * 12
    job = _validate(model, owner, {"model.safetensors": data})
    assert fragment in _check(job, "format_inspection").summary


def test_a_header_length_larger_than_the_file_fails(model, owner):
    job = _validate(model, owner, {"model.safetensors": struct.pack("<Q", 10**9) + b"{}"})
    assert "does not fit" in _check(job, "format_inspection").summary


def test_huggingface_needs_config_weights_and_tokenizer(model, owner):
    job = _validate(model, owner, {"model.safetensors": GOOD_WEIGHTS}, flavor="huggingface")
    missing = _check(job, "completeness").details["missing"]
    assert job.status == "failed" and any("config.json" in m for m in missing) and any("tokenizer" in m for m in missing)


def test_a_shard_index_naming_a_missing_shard_fails(model, owner):
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    files = {**HF_FILES, "model.safetensors.index.json": json.dumps(index).encode(), "model-00001-of-00002.safetensors": GOOD_WEIGHTS}
    job = _validate(model, owner, files, flavor="huggingface")
    problems = _check(job, "completeness").details["shard_problems"]
    assert problems == ["model.safetensors.index.json names shard 'model-00002-of-00002.safetensors', which was not uploaded"]


def test_an_index_naming_many_missing_shards_is_one_finding(model, owner):
    index = {"weight_map": {f"t{n}": f"model-{n:05d}-of-50000.safetensors" for n in range(1, 50_001)}}
    job = _validate(model, owner, {**HF_FILES, "model.safetensors.index.json": json.dumps(index).encode()}, flavor="huggingface")
    problems = _check(job, "completeness").details["shard_problems"]
    assert problems == ["model.safetensors.index.json names 50000 shards that were not uploaded, e.g. 'model-00001-of-50000.safetensors'"]


@pytest.mark.parametrize("flavor, files, ok", [("onnx", {"m.onnx": b"x"}, True), ("onnx", {"m.bin": b"x"}, False), ("sklearn", {"m.joblib": b"x"}, True), ("sklearn", {"m.txt": b"x"}, False)])
def test_completeness_per_flavor(model, owner, flavor, files, ok):
    job = _validate(model, owner, files, flavor=flavor)
    assert (_check(job, "completeness").verdict == "pass") is ok


def test_required_file_patterns_of_the_model_policy(model, owner):
    validation_policy_update(model=model, actor=owner, required_file_patterns=["docs/MODEL_CARD.md"], pinned_baseline=None, rules=[])
    assert _check(_validate(model, owner, {"w.bin": b"1"}), "completeness").verdict == "fail"
    assert _check(_validate(model, owner, {"w.bin": b"1", "docs/MODEL_CARD.md": b"#"}), "completeness").verdict == "pass"


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_a_pickle_that_calls_os_system_is_flagged_at_every_protocol(model, owner, protocol):
    job = _validate(model, owner, {"model.pkl": pickle.dumps(RunsSystem(), protocol=protocol)}, flavor="sklearn")
    check = _check(job, "unsafe_serialization")
    assert check.verdict == "fail" and job.unsafe_finding
    assert any(g in ("posix.system", "os.system", "nt.system") for g in check.details["unsafe"]["model.pkl"])


def test_eval_is_flagged(model, owner):
    job = _validate(model, owner, {"model.pkl": pickle.dumps(RunsEval(), protocol=4)})
    assert "builtins.eval" in _check(job, "unsafe_serialization").details["unsafe"]["model.pkl"]


def test_a_pytorch_zip_with_a_malicious_data_pkl_is_flagged(model, owner):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"state": RunsSystem()}, protocol=2))
        archive.writestr("archive/data/0", b"\x00" * 16)
        archive.writestr("archive/version", b"3\n")
    job = _validate(model, owner, {"pytorch_model.bin": buffer.getvalue()}, flavor="pytorch")
    check = _check(job, "unsafe_serialization")
    assert check.verdict == "fail" and check.details["files"]["pytorch_model.bin"]["members"] == ["archive/data.pkl"]


def test_a_clean_pickle_of_plain_data_passes(model, owner):
    data = pickle.dumps(OrderedDict(weights=[1.0, 2.0], meta={"n": 1, "tags": {"a"}}, when=None), protocol=4)
    job = _validate(model, owner, {"model.pkl": data})
    check = _check(job, "unsafe_serialization")
    assert check.verdict == "pass" and not job.unsafe_finding
    assert check.details["files"]["model.pkl"]["imports"] == ["collections.OrderedDict"]


def test_a_legacy_torch_stream_of_several_pickles_followed_by_raw_bytes_is_scanned_entirely():
    stream = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2) + pickle.dumps(RunsSystem(), protocol=2) + os.urandom(64)
    result = scan_file(io.BytesIO(stream))
    assert result["unsafe"] and result["format"] == "pickle"


def test_an_import_computed_at_load_time_counts_as_unsafe():
    # STACK_GLOBAL whose module name is what the loader's persistent_load returns cannot be resolved statically.
    crafted = b"\x80\x04" + b"\x8c\x02os\x94" + b"Q" + b"\x8c\x06system\x94" + b"\x93" + b"."
    result = scan_file(io.BytesIO(crafted))
    assert result["unsafe"] == ["<an import whose name is computed at load time>"]


def test_binary_weights_that_are_not_a_pickle_are_not_flagged(model, owner):
    job = _validate(model, owner, {"weights.bin": b"raw float data " + bytes(range(256))})
    check = _check(job, "unsafe_serialization")
    assert check.verdict == "skip" and check.details["files"]["weights.bin"]["format"] == "not a pickle"


def test_code_that_runs_before_a_parse_error_is_still_flagged(model, owner):
    # pickle.load would call os.system before reaching the garbage at the end.
    crafted = b"cos\nsystem\n(S'id'\ntR" + b"\xff\xfe garbage"
    assert scan_file(io.BytesIO(crafted))["unsafe"][0] == "os.system"
    job = _validate(model, owner, {"model.pkl": crafted})
    assert job.unsafe_finding and _check(job, "unsafe_serialization").details["unsafe"]["model.pkl"][0] == "os.system"


def test_a_half_written_pickle_cannot_be_shown_safe(model, owner):
    job = _validate(model, owner, {"model.pkl": pickle.dumps(RunsSystem(), protocol=2)[:-8]})
    assert _check(job, "unsafe_serialization").verdict == "fail"


def test_a_flagged_version_can_never_leave_draft(model, owner):
    from django.core.exceptions import ValidationError

    from apps.approvals.services import version_transition

    job = _validate(model, owner, {"model.pkl": pickle.dumps(RunsSystem(), protocol=2)})
    with pytest.raises(ValidationError, match="cannot leave draft"):
        version_transition(version=job.version, to_stage="staging", actor=owner)


@pytest.mark.parametrize(
    "requirements, verdict",
    [("torch==2.3.1\nnumpy===1.26.4\n# comment\n", "pass"), ("torch>=2\nnumpy==1.26.4\n", "warn"), ("torch==2.3.1\nnot a valid line!!\n", "fail"), ("", "skip")],
)
def test_dependencies_are_parsed_with_packaging(model, owner, requirements, verdict):
    job = _validate(model, owner, {"a.bin": b"a"}, dependencies={"requirements": requirements})
    assert _check(job, "dependencies").verdict == verdict


def test_a_job_is_run_once_even_if_delivered_twice(model, owner):
    version = register_version(model, owner, files={"a.bin": b"a"})
    job = version.validation_jobs.get()
    assert validation_run(job_id=job.pk) is not None
    assert validation_run(job_id=job.pk) is None
    job.refresh_from_db()
    assert job.attempts == 1 and job.checks.count() == 5


def test_registering_creates_a_queued_job_in_the_same_transaction(model, owner):
    version = register_version(model, owner)
    assert list(version.validation_jobs.values_list("status", flat=True)) == ["queued"]


def test_a_blob_missing_from_storage_is_an_error_not_a_retry_loop(model, owner):
    version = register_version(model, owner, files={"model.safetensors": GOOD_WEIGHTS})
    os.remove(artifact_storage().path(blob_key(version.artifacts.get().sha256)))
    job = version.validation_jobs.get()
    validation_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "error"
    assert _check(job, "integrity").verdict == "fail" and _check(job, "format_inspection").verdict == "error"


def test_a_transient_storage_error_puts_the_job_back_in_the_queue(model, owner):
    from apps.validation.services import TransientError

    version = register_version(model, owner, files={"w.bin": b"abc"})
    blob = artifact_storage().path(blob_key(version.artifacts.get().sha256))
    os.rename(blob, blob + ".aside")
    os.mkdir(blob)  # reading now fails with IsADirectoryError: an OSError of the kind that may pass
    job = version.validation_jobs.get()
    try:
        with pytest.raises(TransientError):
            validation_run(job_id=job.pk)
    finally:
        os.rmdir(blob)
        os.rename(blob + ".aside", blob)
    job.refresh_from_db()
    assert job.status == "queued"
    validation_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "passed" and job.attempts == 2


def test_an_onnx_graph_past_the_read_limit_is_a_warning_and_a_truncated_one_fails(model, owner, settings):
    data = onnx_model(weights=64)
    settings.VALIDATION_ONNX_MAX_READ_BYTES = 40
    check = _check(_validate(model, owner, {"model.onnx": data}, flavor="onnx"), "format_inspection")
    assert check.verdict == "warn" and "reading its graph took more than the limit of 40 bytes" in check.summary
    settings.VALIDATION_ONNX_MAX_READ_BYTES = 1024 * 1024
    check = _check(_validate(model, owner, {"model.onnx": data[:-7]}, flavor="onnx"), "format_inspection")
    assert check.verdict == "fail" and "model.onnx is not a readable ONNX model" in check.summary
