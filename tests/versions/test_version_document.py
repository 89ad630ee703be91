"""The version JSON of a fully populated version, pinned field by field: the API's detail, its list item and the
answer to the registration all render this one document, and a refactoring must not change a byte of it."""

import json
import re
import struct

import pytest

from apps.validation.services import validation_run
from apps.versions.models import ModelVersion
from tests.factories import register_version, sha256, upload

pytestmark = pytest.mark.django_db

HEADER = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
WEIGHTS = struct.pack("<Q", len(HEADER)) + HEADER + bytes(8)
CONFIG = b'{"hidden_size": 4}'
VOCAB = b"hello\nworld\n"
REQUIREMENTS = "torch==2.3.0\nnumpy==1.26.4\n"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")

DOCUMENT = {
    "description": "Fine-tuned on **reviews**.",
    "flavor": "pytorch",
    "tags": ["nlp", "en", "nlp"],
    "hyperparameters": {"lr": 0.001, "layers": [4, 4], "optimizer": {"name": "adamw", "betas": [0.9, 0.999]}, "warmup": True},
    "metrics": {"accuracy": 0.93, "f1": 1, "eval/loss": 0.25},
    "datasets": [
        {"name": "reviews", "uri": "s3://data/reviews", "digest": "sha256:abc", "role": "training", "size_bytes": 1048576, "description": "Raw reviews."},
        {"name": "reviews-test", "uri": "s3://data/reviews-test", "role": "evaluation", "size_bytes": 0},
        {"name": "holdout", "uri": "s3://data/holdout", "digest": "v3"},
    ],
    "code": {"repository": "https://git.example.com/ml/sentiment.git", "commit": "ABCDEF1234567", "branch": "main", "dirty": False},
    "dependencies": {"requirements": REQUIREMENTS, "python_version": "3.11", "framework": "torch", "framework_version": "2.3.0"},
    "environment": {"image": "registry.example.com/train@sha256:" + "1" * 64, "cuda": "12.1", "gpus": 2},
    "run": {"id": "mlflow:4f2a", "url": "https://mlflow.example.com/#/experiments/1/runs/4f2a"},
    "parents": [{"model": "base", "version": 1, "relation": "fine_tuned_from"}],
    "artifacts": [
        {"path": "model.safetensors", "sha256": sha256(WEIGHTS).upper()},
        {"path": "config.json"},
        {"path": "tokenizer/vocab.txt", "sha256": sha256(VOCAB)},
    ],
}


def _normalised(value):
    """Volatile values (timestamps, ids) replaced by a marker of their kind, so the rest compares exactly."""
    if isinstance(value, dict):
        return {key: _normalised_field(key, item) for key, item in value.items()}
    if isinstance(value, list):
        return [_normalised(item) for item in value]
    return value


def _normalised_field(key, value):
    if isinstance(value, str) and TIMESTAMP.match(value):
        return "<timestamp>"
    if key == "job_id" or (key == "id" and (isinstance(value, int) or UUID.match(str(value)))):
        return "<id>"
    return _normalised(value)


def _expected(version: ModelVersion) -> dict:
    base = "http://testserver/api/v1/models/sentiment/versions/2"
    return {
        "id": "<id>",
        "model": "sentiment",
        "number": 2,
        "stage": "draft",
        "description": "Fine-tuned on **reviews**.",
        "tags": ["en", "nlp"],
        "flavor": "pytorch",
        "hyperparameters": {"lr": 0.001, "layers": [4, 4], "optimizer": {"name": "adamw", "betas": [0.9, 0.999]}, "warmup": True},
        "metrics": {"accuracy": 0.93, "eval/loss": 0.25, "f1": 1.0},
        "datasets": [
            {"id": "<id>", "name": "reviews-test", "uri": "s3://data/reviews-test", "digest": "", "size_bytes": 0, "role": "evaluation"},
            {"id": "<id>", "name": "holdout", "uri": "s3://data/holdout", "digest": "v3", "size_bytes": None, "role": "training"},
            {"id": "<id>", "name": "reviews", "uri": "s3://data/reviews", "digest": "sha256:abc", "size_bytes": 1048576, "role": "training"},
        ],
        "code": {"repository": "https://git.example.com/ml/sentiment.git", "commit": "abcdef1234567", "branch": "main", "dirty": False},
        "dependencies": {"requirements": REQUIREMENTS, "python_version": "3.11", "framework": "torch", "framework_version": "2.3.0"},
        "environment": {"image": "registry.example.com/train@sha256:" + "1" * 64, "cuda": "12.1", "gpus": 2},
        "run": {"id": "mlflow:4f2a", "url": "https://mlflow.example.com/#/experiments/1/runs/4f2a"},
        "lineage": {"graph_url": f"{base}/lineage/", "impact_url": f"{base}/impact/"},
        "artifacts": [
            {
                "path": "config.json", "size": len(CONFIG), "sha256": sha256(CONFIG), "content_type": "application/json",
                "download_url": f"{base}/artifacts/config.json",
            },
            {
                "path": "model.safetensors", "size": len(WEIGHTS), "sha256": sha256(WEIGHTS), "content_type": "application/octet-stream",
                "download_url": f"{base}/artifacts/model.safetensors",
            },
            {
                "path": "tokenizer/vocab.txt", "size": len(VOCAB), "sha256": sha256(VOCAB), "content_type": "text/plain",
                "download_url": f"{base}/artifacts/tokenizer/vocab.txt",
            },
        ],
        "inspection": version.inspection,
        "validation": "<filled in below>",
        "quality": "<filled in below>",
        "created_by": "owner",
        "created_at": "<timestamp>",
        "stage_changed_at": "<timestamp>",
    }


@pytest.fixture
def registered(api_for, owner, model):
    from apps.models.services import model_create

    base = model_create(name="base", actor=owner)
    register_version(base, owner)
    register_version(model, owner)  # so the pinned version is number 2
    files = [upload("model.safetensors", WEIGHTS), upload("config.json", CONFIG), upload("vocab.txt", VOCAB)]
    response = api_for(owner).post(
        f"/api/v1/models/{model.name}/versions/", {"files": files, "metadata": json.dumps(DOCUMENT)}, format="multipart"
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_the_registration_answer_is_the_full_document_with_validation_pending(registered):
    version = ModelVersion.objects.get(model__name="sentiment", number=2)
    expected = _expected(version) | {
        "validation": {
            "status": "queued", "job_id": "<id>", "attempts": 0, "error": "", "created_at": "<timestamp>",
            "started_at": None, "finished_at": None, "unsafe_finding": False, "checks": [],
        },
        "quality": {"status": "pending", "baseline_version": None, "rules": []},
    }
    assert _normalised(registered) == expected


def test_the_detail_and_the_list_item_render_the_same_full_document_once_validated(registered, api_for, reviewer):
    version = ModelVersion.objects.get(model__name="sentiment", number=2)
    validation_run(job_id=version.validation_jobs.get().pk)
    version.refresh_from_db()
    api = api_for(reviewer)
    detail = api.get("/api/v1/models/sentiment/versions/2/").json()
    listed = api.get("/api/v1/models/sentiment/versions/").json()["results"]
    assert [item["number"] for item in listed] == [2, 1]
    assert listed[0] == detail

    normalised = _normalised(detail)
    validation = normalised.pop("validation")
    assert validation | {"checks": None} == {
        "status": "passed", "job_id": "<id>", "attempts": 1, "error": "", "created_at": "<timestamp>",
        "started_at": "<timestamp>", "finished_at": "<timestamp>", "unsafe_finding": False, "checks": None,
    }
    assert validation["checks"] == [
        {"name": c.name, "verdict": c.verdict, "summary": c.summary, "details": c.details, "checker_version": c.checker_version}
        for c in version.validation_jobs.get().checks.all()
    ]
    assert [(check["name"], check["verdict"]) for check in validation["checks"]] == [
        ("integrity", "pass"), ("completeness", "pass"), ("format_inspection", "pass"), ("unsafe_serialization", "skip"), ("dependencies", "pass"),
    ]
    expected = _expected(version) | {"quality": {"status": "passed", "baseline_version": None, "rules": []}}
    del expected["validation"]
    assert normalised == expected
    assert version.inspection, "validation wrote what it found in the files"
