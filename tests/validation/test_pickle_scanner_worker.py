"""The unsafe-serialization scan through the entry point users reach: versions registered through the API and
validated by a real Celery worker; the corpus is flagged file by file and can never reach staging, the benign set
(real torch.save files included) passes, and a whole pickled nn.Module is flagged."""

import json

import pytest
from django.conf import settings

from apps.validation.models import ValidationJob
from tests.factories import upload

from .pickle_corpus import TORCH_MODULES, Sample, benign, malicious, torch_file
from .workers import Worker, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def _register(api, model, samples) -> int:
    response = api.post(
        f"/api/v1/models/{model.name}/versions/",
        {
            "files": [upload(s.name.rsplit("/", 1)[-1], s.data) for s in samples],
            "metadata": json.dumps({"flavor": "sklearn", "artifacts": [{"path": s.name} for s in samples]}),
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content[:500]
    return response.json()["number"]


def _finished(number) -> bool:
    job = ValidationJob.objects.filter(version__number=number).first()
    return job is not None and job.is_finished


def test_a_worker_flags_every_corpus_file_and_passes_the_benign_set_registered_through_the_api(api_for, owner, model, tmp_path):
    corpus, harmless = malicious(tmp_path), benign()
    modules = [Sample(f"torch/{name}", torch_file(name), "torch") for name in TORCH_MODULES]
    assert any(s.name == "torch/state_dict.pt" for s in harmless) and any(s.name == "torch/checkpoint-legacy.pt" for s in harmless)
    api = api_for(owner)
    worker = Worker(settings.CELERY_BROKER_URL).start()
    try:
        bad, good, whole = _register(api, model, corpus), _register(api, model, harmless), _register(api, model, modules)
        wait_for(lambda: _finished(bad) and _finished(good) and _finished(whole), timeout=300)
    finally:
        log = worker.stop()
    bad_body = api.get(f"/api/v1/models/{model.name}/versions/{bad}/").json()
    scan = next(c for c in bad_body["validation"]["checks"] if c["name"] == "unsafe_serialization")
    assert bad_body["validation"]["unsafe_finding"] is True, log[-3000:]
    assert scan["verdict"] == "fail"
    assert sorted(scan["details"]["unsafe"]) == sorted(s.name for s in corpus)
    refused = api.post(f"/api/v1/models/{model.name}/versions/{bad}/transitions/", {"to_stage": "staging", "comment": "go"}, format="json")
    assert refused.status_code == 400 and "draft" in refused.json()["error"]["message"]
    assert api.get(f"/api/v1/models/{model.name}/versions/{bad}/").json()["stage"] == "draft"

    good_body = api.get(f"/api/v1/models/{model.name}/versions/{good}/").json()
    scan = next(c for c in good_body["validation"]["checks"] if c["name"] == "unsafe_serialization")
    assert scan["verdict"] == "pass" and scan["details"]["unsafe"] == {}, scan["summary"]
    assert good_body["validation"]["unsafe_finding"] is False
    moved = api.post(f"/api/v1/models/{model.name}/versions/{good}/transitions/", {"to_stage": "staging", "comment": "go"}, format="json")
    assert moved.status_code in (200, 201), moved.content[:500]

    scan = next(c for c in api.get(f"/api/v1/models/{model.name}/versions/{whole}/").json()["validation"]["checks"] if c["name"] == "unsafe_serialization")
    assert scan["verdict"] == "fail" and sorted(scan["details"]["unsafe"]) == sorted(s.name for s in modules)
    assert all("torch.nn.modules.linear.Linear" in " ".join(found) for found in scan["details"]["unsafe"].values())
