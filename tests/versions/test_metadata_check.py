"""The metadata check the CLI runs before it uploads anything: the registration's document checks, parents included."""

import json

import pytest
from django.core.signals import request_started

from apps.accounts.models import TokenScope
from apps.accounts.services import api_token_create
from apps.versions.models import ModelVersion, UploadSession
from registry_cli.main import main

pytestmark = pytest.mark.django_db


def _check(api, name, document):
    return api.post(f"/api/v1/models/{name}/versions/check/", document, format="json")


def test_a_good_document_passes_and_registers_nothing(api_for, owner, model, version):
    document = {"metrics": {"auc": 0.9}, "parents": [{"model": model.name, "version": version.number, "relation": "fine_tuned_from"}]}
    response = _check(api_for(owner), model.name, document)
    assert response.status_code == 200 and response.json() == {"valid": True}
    assert ModelVersion.objects.count() == 1


@pytest.mark.parametrize(
    "document, field, message",
    [
        ({"code": {"commit": "not-a-sha"}}, "code", "'commit' must be a hexadecimal commit SHA (7-64 characters)."),
        ({"datasets": [{"name": "d"}]}, "datasets", "Dataset #1: 'uri' is required."),
        ({"surprise": 1}, "metadata", "Unknown keys: surprise."),
        ({"parents": [{"model": "nope", "version": 1, "relation": "fine_tuned_from"}]}, "parents", "Parent #1: nope v1 is unknown or not visible to you."),
    ],
)
def test_a_bad_document_is_a_400_naming_the_field(api_for, owner, model, document, field, message):
    response = _check(api_for(owner), model.name, document)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and message in " ".join(error["fields"][field])


def test_it_takes_the_register_permission(api_for, reviewer, outsider, model):
    assert _check(api_for(reviewer), model.name, {}).status_code == 403
    assert _check(api_for(outsider), model.name, {}).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_the_cli_refuses_a_bad_metadata_file_before_uploading_any_file(live_server, owner, model, tmp_path, capsys):
    _, token = api_token_create(user=owner, name="pipeline", scope=TokenScope.FULL)
    (tmp_path / "model.bin").write_bytes(b"\x00" * 1000)
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"run": {"url": "javascript:alert(1)"}}))
    paths: list[str] = []

    def seen(sender, environ, **kwargs):
        paths.append(f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}")

    request_started.connect(seen)
    try:
        code = main(["register", model.name, str(tmp_path / "model.bin"), "--metadata", str(meta)], environ={"REGISTRY_URL": live_server.url, "REGISTRY_TOKEN": token})
    finally:
        request_started.disconnect(seen)
    assert code == 1
    assert "'url' must be an http:// or https:// URL with a host." in capsys.readouterr().err
    assert paths == [f"POST /api/v1/models/{model.name}/uploads/"]  # the upload session checks the metadata first
    assert not UploadSession.objects.exists()
    assert not ModelVersion.objects.exists()
