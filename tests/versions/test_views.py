import hashlib

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.versions.models import ModelVersion
from tests.factories import register_version, sha256, streamed, upload

pytestmark = pytest.mark.django_db


def _upload_form(**extra):
    data = {"flavor": "huggingface", "metric_name": ["accuracy", ""], "metric_value": ["0.93", ""], "param_name": ["lr"], "param_value": ["0.001"]}
    data.update(extra)
    return data


def test_uploading_through_the_form_keeps_folder_paths_and_checksums(web_for, owner, model):
    client = web_for(owner)
    weights = bytes(range(256)) * 40
    response = client.post(
        f"/models/{model.name}/versions/new/",
        _upload_form(
            files=[upload("model.bin", weights), upload("vocab.txt", b"a\nb\n")],
            paths=["model.bin", "tokenizer/vocab.txt"],
            dataset_name=["imdb"], dataset_uri=["s3://d/imdb"], dataset_digest=["v2"], dataset_role=["training"],
            code_commit="abc1234", requirements_file=upload("requirements.txt", b"torch==2.3.0\n"),
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    version = ModelVersion.objects.get()
    assert response["Location"] == f"/models/{model.name}/versions/1/"
    assert {a.path for a in version.artifacts.all()} == {"model.bin", "tokenizer/vocab.txt"}
    assert version.hyperparameters == {"lr": 0.001} and version.metrics.get().value == 0.93
    assert version.requirements == "torch==2.3.0\n" and version.dataset_links.get().dataset.digest == "v2"
    download = client.get(f"/models/{model.name}/versions/1/artifacts/model.bin")
    assert hashlib.sha256(streamed(download)).hexdigest() == sha256(weights)
    page = client.get(f"/models/{model.name}/versions/1/").content.decode()
    assert sha256(weights) in page and "tokenizer/vocab.txt" in page


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"files": [upload("a.bin", b"x")], "metric_name": ["acc"], "metric_value": ["high"]}, "must be a number"),
        ({}, "Upload at least one file"),
        ({"files": [upload("a.bin", b"x")], "paths": ["../../a.bin"]}, "&#x27;..&#x27; segment"),
        ({"files": [upload("a.bin", b"x")], "metrics_file": upload("m.json", b"{oops")}, "not valid JSON"),
        ({"files": [upload("a.bin", b"x")], "dataset_name": ["d"], "dataset_uri": [""], "dataset_role": ["training"]}, "Dataset #1: &#x27;uri&#x27; is required."),
    ],
)
def test_the_form_shows_clear_errors_and_stores_nothing(web_for, owner, model, extra, message):
    data = _upload_form(metric_name=[], metric_value=[])
    data.update(extra)
    response = web_for(owner).post(f"/models/{model.name}/versions/new/", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not ModelVersion.objects.exists()


def test_an_outsider_gets_404_for_versions_and_files(web_for, outsider, model, version):
    client = web_for(outsider)
    for url in [f"/models/{model.name}/versions/1/", f"/models/{model.name}/versions/1/edit/", f"/models/{model.name}/versions/1/artifacts/config.json"]:
        assert client.get(url).status_code == 404, url
    assert client.post(f"/models/{model.name}/versions/1/transition/", {"to_stage": "staging"}).status_code == 404
    version.refresh_from_db()
    assert version.stage == "draft"


def test_a_viewer_may_read_but_not_move_or_edit(web_for, reviewer, model, version):
    client = web_for(reviewer)
    assert client.get(f"/models/{model.name}/versions/1/").status_code == 200
    assert client.get(f"/models/{model.name}/versions/1/edit/").status_code == 403
    assert client.post(f"/models/{model.name}/versions/1/transition/", {"to_stage": "staging", "justification": "x"}).status_code == 403


def test_moving_a_version_through_the_page(web_for, owner, model, version):
    client = web_for(owner)
    response = client.post(f"/models/{model.name}/versions/1/transition/", {"to_stage": "staging", "justification": "ready"}, follow=True)
    assert "v1 moved to staging" in response.content.decode()
    back = client.post(f"/models/{model.name}/versions/1/transition/", {"to_stage": "draft", "justification": "not yet"}, follow=True)
    version.refresh_from_db()
    assert version.stage == "draft" and "moved to draft" in back.content.decode()
    refused = client.post(f"/models/{model.name}/versions/1/transition/", {"to_stage": "production", "justification": "go"}, follow=True)
    assert "Choose a stage" in refused.content.decode()  # production is not a move a draft version may request
    missing_reason = client.post(f"/models/{model.name}/versions/1/transition/", {"to_stage": "staging"}, follow=True)
    assert "say why" in missing_reason.content.decode()


def test_version_page_query_count_does_not_grow_with_artifacts(web_for, owner, model):
    client = web_for(owner)
    register_version(model, owner, files={"a": b"a"}, metrics={"m": 1})
    register_version(model, owner, files={f"f{i}": str(i).encode() for i in range(40)}, metrics={f"m{i}": i for i in range(20)})

    def count(number):
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(f"/models/{model.name}/versions/{number}/").status_code == 200
        return len(ctx.captured_queries)

    assert count(1) == count(2)


def test_html_in_user_text_is_escaped(web_for, owner, model):
    register_version(model, owner, description="<script>alert(1)</script>", hyperparameters={"<b>x</b>": "<i>y</i>"})
    page = web_for(owner).get(f"/models/{model.name}/versions/1/").content.decode()
    assert "<script>alert(1)" not in page and "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page


def test_a_nan_typed_into_the_upload_form_is_kept_as_text_not_a_server_error(web_for, owner, model):
    response = web_for(owner).post(
        f"/models/{model.name}/versions/new/",
        {"flavor": "custom", "files": [upload("a.bin", b"x")], "param_name": ["lr"], "param_value": ["NaN"]},
    )
    assert response.status_code == 302
    assert ModelVersion.objects.get().hyperparameters == {"lr": "NaN"}
