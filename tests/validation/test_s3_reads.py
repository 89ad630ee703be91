"""Validation on S3 reads each artifact once for its hash and only headers besides, against moto's S3 server.

The bytes are counted from what S3 answered (a botocore hook on the storage's own client reads each GET's
Content-Length), never from a mock: django-storages and boto3 talk HTTP to `moto_server` as they would to AWS.
"""

import json

import pytest
from django.conf import settings
from django.test import override_settings

from apps.models.management.commands.seed_demo import float32s, safetensors_bytes
from apps.validation.models import ValidationJob
from apps.validation.services import validation_run
from apps.versions.blobs import artifact_storage
from tests.factories import register_version
from tests.helpers import onnx_model
from tests.s3 import moto_endpoint_fixture, s3_fixture  # noqa: F401  (fixtures: a moto S3 server and a fresh bucket)

pytestmark = pytest.mark.django_db

MiB = 1024 * 1024
BIG_SHARD = safetensors_bytes({"embeddings.weight": ("F32", [16 * MiB], bytes(64 * MiB))})
SMALL_SHARD = safetensors_bytes({"head": ("F32", [2, 2], float32s([0.5] * 4))})
INDEX = {
    "metadata": {"total_size": 64 * MiB + 16},
    "weight_map": {"embeddings.weight": "model-00001-of-00002.safetensors", "head": "model-00002-of-00002.safetensors"},
}
FILES = {
    "config.json": json.dumps({"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 4}).encode(),
    "tokenizer.json": b"{}",
    "model.safetensors.index.json": json.dumps(INDEX).encode(),
    "model-00001-of-00002.safetensors": BIG_SHARD,
    "model-00002-of-00002.safetensors": SMALL_SHARD,
    "onnx/model.onnx": onnx_model(weights=4096),
}
TOTAL = sum(len(data) for data in FILES.values())


def _validated(model, owner) -> ValidationJob:
    version = register_version(model, owner, files=FILES, flavor="huggingface", dependencies={"requirements": "torch==2.3.1\n"})
    job = version.validation_jobs.get()
    validation_run(job_id=job.pk)
    job.refresh_from_db()
    return job


def _results(job: ValidationJob) -> tuple:
    job.version.refresh_from_db()
    checks = [(c.name, c.verdict, c.summary, c.details) for c in job.checks.order_by("position")]
    return job.status, checks, job.version.inspection


class ServedBytes:
    """What S3 sent for each GET, read from the response the storage's client parsed."""

    def __init__(self):
        self.gets: list[int] = []

    def __call__(self, http_response, parsed, **_):
        self.gets.append(int(parsed.get("ContentLength") or 0))

    @property
    def total(self) -> int:
        return sum(self.gets)


def test_a_validation_on_s3_reads_each_file_once_and_headers_by_range_with_the_results_of_local_disk(model, owner, s3):
    local = {**settings.STORAGES, "artifacts": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": settings.ARTIFACT_ROOT}}}
    with override_settings(STORAGES=local):
        on_disk = _validated(model, owner)

    served = ServedBytes()
    artifact_storage().connection.meta.client.meta.events.register("after-call.s3.GetObject", served)
    on_s3 = _validated(model, owner)

    assert on_s3.status == "passed", [(c[0], c[1], c[2]) for c in _results(on_s3)[1]]
    assert _results(on_s3) == _results(on_disk)
    assert on_s3.version.inspection["checkpoints"]["model.safetensors.index.json"]["parameters"] == 16 * MiB + 4
    # The hash streams each file once; the headers, the index, the ONNX graph and the pickle scan's probes add little.
    assert TOTAL <= served.total < TOTAL + 2 * MiB, (served.total, served.gets)
    assert len(served.gets) < 60, served.gets
