import json

import pytest

from tests.factories import sha256, streamed, upload

pytestmark = pytest.mark.django_db


def test_a_pipeline_registers_a_version_and_downloads_its_file(api_for, owner, model):
    api = api_for(owner)
    data = b"weights" * 100
    response = api.post(
        f"/api/v1/models/{model.name}/versions/",
        {"files": [upload("w.bin", data)], "metadata": json.dumps({"metrics": {"acc": 0.9}, "artifacts": [{"path": "weights/w.bin", "sha256": sha256(data)}]})},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["number"] == 1 and body["artifacts"][0]["path"] == "weights/w.bin"
    download = api.get(f"/api/v1/models/{model.name}/versions/1/artifacts/weights/w.bin")
    assert download.status_code == 200
    assert sha256(streamed(download)) == sha256(data)
