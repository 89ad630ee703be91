"""Bad input gets a 400 naming the field, never a 500, and stores nothing (issue 8, section 7).

NUL characters and unpaired surrogates in any JSON string or key (PostgreSQL refuses the first, every UTF-8
encoder the second), JSON nested 100,000 deep, and artifact paths with invisible or look-alike characters.
"""

import json
from pathlib import Path

import pytest
from django.db import connection

from apps.approvals.models import TransitionRequest
from apps.audit.models import AuditEntry
from apps.lineage.models import Dataset
from apps.models.models import RegisteredModel
from apps.models.permissions import Action
from apps.models.services import model_permission_grant
from apps.versions.models import ModelVersion
from tests.factories import register_version, upload
from tests.upload_spool import spool_fixture  # noqa: F401  (the `spool` fixture)

pytestmark = pytest.mark.django_db

NUL = "a\x00b"
SURROGATE = "a\ud800b"
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture(autouse=True)
def on_postgresql():
    assert connection.vendor == "postgresql", "these tests are about what PostgreSQL refuses"


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


def _register(api, name: str, metadata, files=None):
    body = metadata if isinstance(metadata, str) else json.dumps(metadata)
    return api.post(
        f"/api/v1/models/{name}/versions/",
        {"files": [upload(n, d) for n, d in (files or {"model.bin": b"weights"}).items()], "metadata": body},
        format="multipart",
    )


def _field_error(response, field: str) -> str:
    assert response.status_code == 400, response.content[:500]
    error = response.json()["error"]
    assert field in error.get("fields", {}), error
    return " ".join(error["fields"][field])


METADATA_CASES = [
    ({"description": NUL}, "description"),
    ({"description": SURROGATE}, "description"),
    ({"hyperparameters": {"lr": NUL}}, "hyperparameters.lr"),
    ({"hyperparameters": {"optimizer": {"name": SURROGATE}}}, "hyperparameters.optimizer.name"),
    ({"hyperparameters": {NUL: 1}}, "hyperparameters"),
    ({"environment": {"os": [SURROGATE]}}, "environment.os[0]"),
    ({"code": {"repository": NUL}}, "code.repository"),
    ({"dependencies": {"requirements": "torch\x00==2"}}, "dependencies.requirements"),
    ({"datasets": [{"name": NUL, "uri": "s3://d/x", "role": "training"}]}, "datasets[0].name"),
    ({"datasets": [{"name": "d", "uri": "s3://d/\ud800", "role": "training"}]}, "datasets[0].uri"),
    ({"run": {"id": NUL}}, "run.id"),
    ({"tags": [SURROGATE]}, "tags[0]"),
    ({"artifacts": [{"path": "model\x00.bin"}]}, "artifacts[0].path"),
]


@pytest.mark.parametrize("metadata, field", METADATA_CASES)
def test_unstorable_text_in_registration_metadata_is_a_400_naming_the_field_and_stores_no_byte(
    api_for, owner, model, isolated_artifacts, spool, metadata, field
):
    response = _register(api_for(owner), model.name, metadata)
    assert "NUL" in _field_error(response, field) or "surrogate" in _field_error(response, field)
    assert not ModelVersion.objects.exists() and not Dataset.objects.exists()
    assert not AuditEntry.objects.filter(action="version.registered").exists()
    assert files_under(isolated_artifacts) == [] and files_under(spool) == []


def test_the_metadata_part_may_also_come_as_a_file_and_is_checked_the_same(api_for, owner, model, isolated_artifacts, spool):
    metadata = upload("metadata.json", json.dumps({"description": NUL}).encode(), "application/json")
    response = api_for(owner).post(
        f"/api/v1/models/{model.name}/versions/", {"files": [upload("model.bin", b"w")], "metadata": metadata}, format="multipart"
    )
    assert "NUL" in _field_error(response, "description")
    assert files_under(isolated_artifacts) == [] and files_under(spool) == []


def test_json_nested_100000_deep_in_the_metadata_part_is_a_400(api_for, owner, model, isolated_artifacts, spool):
    response = _register(api_for(owner), model.name, DEEP)
    assert "nests deeper than 64 levels" in _field_error(response, "metadata")
    assert files_under(isolated_artifacts) == [] and files_under(spool) == []


def test_json_nested_deeper_than_the_limit_but_parseable_is_a_400_too(api_for, owner, model):
    response = _register(api_for(owner), model.name, {"hyperparameters": {"deep": json.loads("[" * 200 + "]" * 200)}})
    assert "nests deeper than 64 levels" in response.json()["error"]["message"]
    assert response.status_code == 400 and not ModelVersion.objects.exists()


def test_text_that_postgresql_can_store_is_kept_exactly(api_for, owner, model):
    text = "naïve 模型 🚀 \u200b tab\there"
    response = _register(api_for(owner), model.name, {"description": text, "hyperparameters": {"note": text}})
    assert response.status_code == 201, response.json()
    version = ModelVersion.objects.get()
    assert version.description == text and version.hyperparameters == {"note": text}


def _json_endpoints(model_name: str, version_number: int, request_pk: int) -> list[tuple[str, str, str]]:
    """(url, the string field to corrupt, other fields) for each JSON endpoint that takes text."""
    return [
        ("/api/v1/models/", "name", "{}"),
        ("/api/v1/models/", "description", '{"name": "churn"}'),
        (f"/api/v1/models/{model_name}/versions/{version_number}/transitions/", "comment", '{"to_stage": "staging"}'),
        (f"/api/v1/transition-requests/{request_pk}/approve/", "comment", "{}"),
        (f"/api/v1/transition-requests/{request_pk}/reject/", "comment", "{}"),
        ("/api/v1/datasets/", "name", '{"uri": "s3://d/x"}'),
        ("/api/v1/datasets/", "uri", '{"name": "x"}'),
    ]


@pytest.fixture
def pending(model, owner, reviewer, version):
    """A request for production waiting for an approval, so approve and reject reach their comment."""
    from apps.approvals.services import transition_request_create
    from apps.validation.services import validation_run

    validation_run(job_id=version.validation_jobs.get().pk)
    transition_request_create(version=version, to_stage="staging", actor=owner, justification="try")
    waiting = transition_request_create(version=version, to_stage="production", actor=owner, justification="ship")
    assert waiting.status == "pending"
    return waiting


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
def test_every_json_endpoint_refuses_unstorable_text_with_a_400_naming_the_field(api_for, owner, reviewer, model, version, pending, bad):
    api = api_for(reviewer)
    model_permission_grant(model=model, actor=owner, action=Action.REGISTER, user=reviewer)
    model_permission_grant(model=model, actor=owner, action=Action.REQUEST_TRANSITION, user=reviewer)
    before = (RegisteredModel.objects.count(), TransitionRequest.objects.count(), Dataset.objects.count(), AuditEntry.objects.count())
    for url, field, rest in _json_endpoints(model.name, version.number, pending.pk):
        body = json.loads(rest)
        body[field] = bad
        response = api.post(url, json.dumps(body), content_type="application/json")
        assert response.status_code == 400, (url, response.content[:300])
        assert field in response.json()["error"]["fields"], (url, response.json())
        key_response = api.post(url, json.dumps({**json.loads(rest), bad: "x"}), content_type="application/json")
        assert key_response.status_code == 400, (url, key_response.content[:300])
    assert (RegisteredModel.objects.count(), TransitionRequest.objects.count(), Dataset.objects.count(), AuditEntry.objects.count()) == before


def test_every_json_endpoint_refuses_json_nested_100000_deep_with_a_400(api_for, owner, model, version, pending):
    api = api_for(owner)
    urls = [url for url, _, _ in _json_endpoints(model.name, version.number, pending.pk)] + [
        f"/api/v1/models/{model.name}/rollback/",
        f"/api/v1/models/{model.name}/deployments/prod/",
        f"/api/v1/models/{model.name}/",
    ]
    for url in urls:
        method = api.put if "deployments" in url else (api.patch if url.endswith(f"/{model.name}/") else api.post)
        for deep in (DEEP, '{"a": ' * 50_000 + "1" + "}" * 50_000):
            response = method(url, deep, content_type="application/json")
            assert response.status_code in (400, 405), (url, response.status_code, response.content[:300])
            if response.status_code == 400:
                assert "nests deeper than 64 levels" in response.json()["error"]["message"], url


def test_a_json_body_larger_than_the_limit_is_a_400(api_for, owner, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api_for(owner).post("/api/v1/models/", json.dumps({"name": "big", "description": "x" * 5000}), content_type="application/json")
    assert response.status_code == 400 and "DATA_UPLOAD_MAX_MEMORY_SIZE" in response.json()["error"]["message"]
    assert not RegisteredModel.objects.filter(name="big").exists()


def test_multipart_text_fields_with_nul_are_a_400_naming_the_field(api_for, owner, model, version):
    response = api_for(owner).post(
        f"/api/v1/models/{model.name}/versions/{version.number}/transitions/", {"to_stage": "staging", "comment": NUL}, format="multipart"
    )
    assert "NUL" in _field_error(response, "comment")
    assert not TransitionRequest.objects.exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"description": NUL}, "Null characters are not allowed"),
        ({"run_id": NUL}, "Null characters are not allowed"),
        ({"dataset_name": [NUL], "dataset_uri": ["s3://d/x"], "dataset_role": ["training"]}, "datasets[0].name"),
        ({"param_name": ["lr"], "param_value": [NUL]}, "hyperparameters.lr"),
        ({"param_name": [NUL], "param_value": ["1"]}, "hyperparameters"),
        ({"hyperparameters_file": upload("h.json", json.dumps({"lr": NUL}).encode())}, "NUL"),
        ({"hyperparameters_file": upload("h.json", DEEP.encode())}, "nests deeper than 64 levels"),
        ({"requirements_file": upload("requirements.txt", b"torch\x00==2\n")}, "dependencies.requirements"),
        ({"paths": ["weights\x00.bin"]}, "contains"),
    ],
)
def test_the_upload_page_shows_unstorable_text_as_a_form_error_and_stores_nothing(
    web_for, owner, model, isolated_artifacts, spool, extra, message
):
    data = {"flavor": "custom", "files": [upload("model.bin", b"weights")], **extra}
    response = web_for(owner).post(f"/models/{model.name}/versions/new/", data)
    assert response.status_code == 400
    assert message in response.content.decode().replace("&#x27;", "'")
    assert not ModelVersion.objects.exists() and files_under(isolated_artifacts) == [] and files_under(spool) == []


LOOKALIKE_PATHS = [
    "weights\u2215model.bin",  # division slash
    "weights\u2044model.bin",  # fraction slash
    "weights\uff0fmodel.bin",  # fullwidth solidus
    "weights\u29f8model.bin",  # big solidus
    "weights\u2571model.bin",  # box drawing diagonal
    "weights\uff3cmodel.bin",  # fullwidth reverse solidus
    "weights\u2216model.bin",  # set minus
    "\u2024\u2024/model.bin",  # one dot leaders that read as '..'
    "\u2025/model.bin",  # two dot leader
    "model\uff0ebin",  # fullwidth full stop
    "C\uff1a/model.bin",  # fullwidth colon: a drive letter look-alike
    "model\u0338.bin",  # combining long solidus overlay
]
INVISIBLE_PATHS = [
    "model\u202egnp.exe",  # right-to-left override: shows as 'modelexe.png'
    "model\u202a.bin", "model\u202b.bin", "model\u202c.bin", "model\u202d.bin",
    "model\u2066.bin", "model\u2067.bin", "model\u2068.bin", "model\u2069.bin",
    "model\u200e.bin", "model\u200f.bin",
    "model\u200b.bin",  # zero-width space
    "model\ufeff.bin",  # byte order mark
    "model\u2028.bin",  # line separator
    "model\u00a0.bin",  # no-break space
    "model\x1b[31m.bin",  # terminal escape
    "model\x7f.bin",
]


@pytest.mark.parametrize("path", LOOKALIKE_PATHS + INVISIBLE_PATHS, ids=[ascii(p) for p in LOOKALIKE_PATHS + INVISIBLE_PATHS])
def test_artifact_paths_with_look_alike_or_invisible_characters_are_refused_by_api_and_page(
    api_for, web_for, owner, model, isolated_artifacts, path
):
    response = _register(api_for(owner), model.name, {"artifacts": [{"path": path}]})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert f"U+{ord(next(ch for ch in path if not ch.isalnum() and ch not in './')):04X}" in message or "contains" in message, message
    page = web_for(owner).post(f"/models/{model.name}/versions/new/", {"flavor": "custom", "files": [upload("model.bin", b"w")], "paths": [path]})
    assert page.status_code == 400 and "Artifact path" in page.content.decode()
    assert not ModelVersion.objects.exists() and files_under(isolated_artifacts) == []


def test_the_refusal_names_the_character_and_what_it_looks_like(api_for, owner, model):
    response = _register(api_for(owner), model.name, {"artifacts": [{"path": "weights\u2215model.bin"}]})
    assert "U+2215 (DIVISION SLASH), which looks like '/'" in response.json()["error"]["message"]
    response = _register(api_for(owner), model.name, {"artifacts": [{"path": "model\u202egnp.exe"}]})
    assert "U+202E (RIGHT-TO-LEFT OVERRIDE)" in response.json()["error"]["message"]


def test_paths_in_other_scripts_and_plain_punctuation_are_still_accepted(model, owner):
    files = {"模型/权重.bin": b"1", "données/café-v1.2_final.json": b"2", "tokenizer/vocab (copy).txt": b"3"}
    version = register_version(model, owner, files=files)
    assert sorted(a.path for a in version.artifacts.all()) == sorted(files)


@pytest.mark.django_db(transaction=True)
def test_the_cli_reports_a_look_alike_path_in_one_line_and_registers_nothing(live_server, owner, tmp_path, capsys):
    from apps.accounts.models import TokenScope
    from apps.accounts.services import api_token_create
    from apps.models.services import model_create
    from registry_cli.main import main

    model_create(name="churn", actor=owner)
    _, token = api_token_create(user=owner, name="pipeline", scope=TokenScope.FULL)
    export = tmp_path / "export"
    export.mkdir()
    (export / "model\u202egnp.exe").write_bytes(b"x")
    assert main(["register", "churn", str(export)], environ={"REGISTRY_URL": live_server.url, "REGISTRY_TOKEN": token}) == 1
    error = capsys.readouterr().err
    assert "U+202E (RIGHT-TO-LEFT OVERRIDE)" in error and len(error.strip().splitlines()) == 1
    assert not ModelVersion.objects.exists()


@pytest.mark.parametrize(
    "url", ["/api/v1/models/a%00b/", "/api/v1/models/?search=a%00b", "/api/v1/datasets/?search=%00", "/models/a%00b/", "/models/?q%00=1"]
)
def test_a_nul_in_the_url_or_query_string_is_a_400_not_a_database_error(api_for, web_for, owner, model, url):
    response = (api_for(owner) if url.startswith("/api/") else web_for(owner)).get(url)
    assert response.status_code == 400
    body = response.json()["error"]["message"] if url.startswith("/api/") else response.content.decode()
    assert "NUL" in body
