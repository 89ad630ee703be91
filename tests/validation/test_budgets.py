"""Checks that cannot pin a worker: hostile safetensors headers are refused before any large arithmetic, every check
runs under a time budget, a job stops at its hard limit, and a job is tried at most VALIDATION_MAX_ATTEMPTS times."""

import os

import pytest

from apps.audit.models import AuditEntry
from apps.validation.models import ValidationJob
from apps.validation.services import TransientError, validation_run, validation_sweep
from apps.versions.blobs import artifact_storage, blob_key
from tests.factories import register_version
from tests.helpers import eighty_thousand_dimensions, safetensors_with_header

pytestmark = pytest.mark.django_db


def _inspected(model, owner, files) -> ValidationJob:
    version = register_version(model, owner, files=files)
    job = version.validation_jobs.get()
    validation_run(job_id=job.pk)
    job.refresh_from_db()
    return job


def _inspection(job):
    return job.checks.get(name="format_inspection")


def test_a_shape_of_80000_dimensions_is_refused_by_its_rank(model, owner):
    data = eighty_thousand_dimensions()
    assert len(data) > 1_700_000
    job = _inspected(model, owner, {"model.safetensors": data})
    check = _inspection(job)
    assert job.status == "failed" and check.verdict == "fail"
    assert "tensor 'w' has 80000 dimensions; at most 64 are allowed" in check.summary


@pytest.mark.parametrize(
    "shape, fragment",
    [
        ([2**32, 2**32, 2**32], "more elements than a 64-bit count can hold"),
        ([2**63] * 64, "more elements than a 64-bit count can hold"),
        ([4, -1], "negative dimension (-1)"),
        ([2**70], "does not fit in 64 bits"),
        ([10**4000], "does not fit in 64 bits"),
        ([2, 2.5], "not a whole number"),
        ([True], "not a whole number"),
        ("4", "shape that is not a list"),
    ],
)
def test_hostile_shapes_fail_with_the_bound_they_break(model, owner, shape, fragment):
    header = {"w": {"dtype": "F32", "shape": shape, "data_offsets": [0, 16]}}
    job = _inspected(model, owner, {"model.safetensors": safetensors_with_header(header, b"\x00" * 16)})
    assert job.status == "failed"
    assert fragment in _inspection(job).summary


def test_a_zero_dimension_makes_an_empty_tensor_whatever_the_others_are(model, owner):
    header = {"empty": {"dtype": "F32", "shape": [0, 2**60], "data_offsets": [0, 0]}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    job = _inspected(model, owner, {"model.safetensors": safetensors_with_header(header, b"\x00" * 4)})
    assert _inspection(job).verdict == "pass", _inspection(job).summary
    assert _inspection(job).details["totals"] == {"parameters": 1, "tensors": 2, "dtypes": ["F32"]}


@pytest.mark.parametrize(
    "tensor, fragment",
    [
        ({"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}, "spans 8 bytes but F32 with 3 elements needs 12"),
        ({"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 16]}, "spans 16 bytes but BF16 with 6 elements needs 12"),
        ({"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}, "3 F4 elements, which do not fill whole bytes"),
        ({"dtype": "F32", "shape": [2**40], "data_offsets": [0, 16]}, f"needs {2**42}"),
        ({"dtype": "F32", "shape": [4], "data_offsets": [0, 10**30]}, "outside the 16 data bytes"),
        ({"dtype": ["F32"], "shape": [4], "data_offsets": [0, 16]}, "unknown dtype"),
    ],
)
def test_data_offsets_must_match_shape_times_dtype_size(model, owner, tensor, fragment):
    job = _inspected(model, owner, {"model.safetensors": safetensors_with_header({"w": tensor}, b"\x00" * 16)})
    assert job.status == "failed"
    assert fragment in _inspection(job).summary


def test_four_bit_tensors_are_sized_in_half_bytes(model, owner):
    header = {"w": {"dtype": "F4", "shape": [2, 3], "data_offsets": [0, 3]}}
    job = _inspected(model, owner, {"model.safetensors": safetensors_with_header(header, b"\x00" * 3)})
    assert _inspection(job).verdict == "pass", _inspection(job).summary


@pytest.mark.parametrize("depth", [9, 100_000])
def test_deeply_nested_header_json_is_refused(model, owner, depth):
    nested = b"[" * depth + b"]" * depth
    header = b'{"__metadata__":{"x":' + nested + b'},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    job = _inspected(model, owner, {"model.safetensors": safetensors_with_header(header, b"\x00" * 4)})
    assert job.status == "failed"
    assert "header JSON nests deeper than 8 levels" in _inspection(job).summary


def test_brackets_inside_strings_do_not_count_as_nesting(model, owner):
    header = {"__metadata__": {"note": "[[[[[[[[[[{{{{{{{{{{ \" ]]]"}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    job = _inspected(model, owner, {"model.safetensors": safetensors_with_header(header, b"\x00" * 4)})
    assert _inspection(job).verdict == "pass", _inspection(job).summary


def test_a_header_longer_than_the_setting_is_refused_before_it_is_read(model, owner, settings):
    settings.VALIDATION_SAFETENSORS_MAX_HEADER_BYTES = 1024
    header = {"__metadata__": {"pad": "x" * 2000}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    data = safetensors_with_header(header, b"\x00" * 4)
    job = _inspected(model, owner, {"model.safetensors": data})
    assert job.status == "failed"
    assert f"header length {len(data) - 12} is over the limit of 1024 bytes" in _inspection(job).summary


def test_a_deeply_nested_config_json_fails_inspection_instead_of_crashing_it(model, owner):
    job = _inspected(model, owner, {"config.json": b'{"a":' + b"[" * 50_000 + b"]" * 50_000 + b"}"})
    check = _inspection(job)
    assert check.verdict == "fail" and "config.json: JSON nests deeper than 64 levels" in check.summary


def test_a_check_past_its_budget_is_an_error_and_the_other_checks_still_run(model, owner, settings):
    settings.VALIDATION_CHECK_BUDGET_SECONDS = 1
    settings.VALIDATION_READ_BYTES_PER_SECOND = 500_000
    job = _inspected(model, owner, {"weights.dat": b"\x01" * 2_000_000})
    integrity = job.checks.get(name="integrity")
    assert integrity.verdict == "error" and integrity.summary == "integrity ran past its time budget of 1 s"
    assert [c.name for c in job.checks.all()] == ["integrity", "completeness", "format_inspection", "unsafe_serialization", "dependencies"]
    assert job.checks.get(name="completeness").verdict == "pass"
    assert job.status == "error" and job.attempts == 1


def test_a_job_past_its_hard_limit_is_recorded_as_error_with_the_reason_and_not_retried(model, owner, settings):
    settings.VALIDATION_JOB_HARD_LIMIT_SECONDS = 1
    settings.VALIDATION_READ_BYTES_PER_SECOND = 500_000
    settings.VALIDATION_LEASE_SECONDS = 0
    settings.VALIDATION_RESEND_AFTER_SECONDS = 0
    job = _inspected(model, owner, {"weights.dat": b"\x01" * 2_000_000})
    assert job.status == "error" and job.attempts == 1
    assert job.error == "the job ran past its hard limit of 1 s during integrity (attempt 1)"
    assert [(c.name, c.verdict) for c in job.checks.all()] == [("integrity", "error")]
    assert validation_sweep() == {"reclaimed": 0, "sent": 0, "gave_up": 0}
    assert validation_run(job_id=job.pk) is None
    job.refresh_from_db()
    assert job.status == "error" and job.attempts == 1


def test_a_job_that_keeps_failing_transiently_gives_up_after_the_maximum_attempts(model, owner, settings):
    settings.VALIDATION_MAX_ATTEMPTS = 2
    version = register_version(model, owner, files={"w.bin": b"abc"})
    blob = artifact_storage().path(blob_key(version.artifacts.get().sha256))
    os.rename(blob, blob + ".aside")
    os.mkdir(blob)  # reading fails with IsADirectoryError, an OSError that would pass on a real disk hiccup
    job = version.validation_jobs.get()
    try:
        with pytest.raises(TransientError):
            validation_run(job_id=job.pk)
        job.refresh_from_db()
        assert job.status == "queued" and "Is a directory" in job.error
        assert validation_run(job_id=job.pk) is None
    finally:
        os.rmdir(blob)
        os.rename(blob + ".aside", blob)
    job.refresh_from_db()
    assert job.status == "error" and job.attempts == 2
    assert job.error.startswith("gave up after 2 attempts: integrity: [Errno 21] Is a directory")
    assert AuditEntry.objects.filter(action="validation.gave_up", object_id=str(job.pk)).exists()
    settings.VALIDATION_RESEND_AFTER_SECONDS = 0
    assert validation_sweep() == {"reclaimed": 0, "sent": 0, "gave_up": 0}
