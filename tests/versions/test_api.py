import json

import pytest

from apps.accounts.services import api_token_revoke
from apps.accounts.models import ApiToken
from apps.approvals.services import version_transition
from apps.models.models import RegisteredModel
from apps.versions.models import ModelVersion
from tests.factories import promote, register_version, sha256, streamed, upload
from tests.helpers import onnx_model

ONNX = onnx_model()  # validation reads the graph: the version must pass it to reach production

pytestmark = pytest.mark.django_db


def _register(api, name, files, metadata=None):
    return api.post(
        f"/api/v1/models/{name}/versions/",
        {"files": [upload(n, d) for n, d in files.items()], "metadata": json.dumps(metadata or {})},
        format="multipart",
    )


def test_creating_a_model_makes_the_creator_its_manager(api_for, owner):
    response = api_for(owner).post("/api/v1/models/", {"name": "churn", "description": "card"}, format="json")
    assert response.status_code == 201 and response.json()["name"] == "churn"
    assert owner.has_perm("models.manage_model", RegisteredModel.objects.get(name="churn"))


def test_a_duplicate_model_name_is_a_400_with_a_json_error(api_for, owner, model):
    response = api_for(owner).post("/api/v1/models/", {"name": "Sentiment"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid" and "already exists" in response.json()["error"]["message"]


def test_json_endpoints_refuse_text_plain_bodies(api_for, owner):
    response = api_for(owner).post("/api/v1/models/", data='{"name": "x"}', content_type="text/plain")
    assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_media_type"
    assert not RegisteredModel.objects.exists()


def test_a_foreign_host_header_is_refused(api_for, owner):
    response = api_for(owner).get("/api/v1/models/", HTTP_HOST="evil.example.com")
    assert response.status_code == 400


def test_requests_without_a_token_get_401_json(client, model):
    response = client.get(f"/api/v1/models/{model.name}/stages/production/")
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"


def test_a_revoked_or_made_up_token_is_refused(api_for, owner, model):
    api = api_for(owner)
    api_token_revoke(token=ApiToken.objects.get(user=owner), actor=owner)
    assert api.get("/api/v1/models/").status_code == 401
    api.credentials(HTTP_AUTHORIZATION="Bearer mr_made_up")
    assert api.get("/api/v1/models/").status_code == 401


def test_tokens_are_stored_hashed(api_for, owner):
    api_for(owner)
    token = ApiToken.objects.get(user=owner)
    assert len(token.digest) == 64 and not token.digest.startswith("mr_")


def test_register_then_fetch_by_number_and_by_stage(api_for, owner, reviewer, model):
    response = _register(api_for(owner), model.name, {"model.onnx": ONNX}, {"flavor": "onnx", "metrics": {"auc": 0.8}})
    assert response.status_code == 201
    version = ModelVersion.objects.get()
    reader = api_for(reviewer)
    detail = reader.get(f"/api/v1/models/{model.name}/versions/1/").json()
    assert detail["id"] == str(version.id) and detail["metrics"] == {"auc": 0.8} and detail["artifacts"][0]["sha256"] == sha256(ONNX)
    assert reader.get(f"/api/v1/models/{model.name}/stages/production/").status_code == 404
    promote(version, requester=owner, approver=reviewer)
    production = reader.get(f"/api/v1/models/{model.name}/stages/production/").json()
    assert production["number"] == 1 and production["stage"] == "production"
    download = reader.get(production["artifacts"][0]["download_url"])
    assert download.status_code == 200 and streamed(download) == ONNX
    assert download["X-Content-Type-Options"] == "nosniff" and "attachment" in download["Content-Disposition"]


def test_a_checksum_mismatch_is_a_400_and_stores_nothing(api_for, owner, model):
    response = _register(api_for(owner), model.name, {"a.bin": b"abc"}, {"artifacts": [{"path": "a.bin", "sha256": "0" * 64}]})
    assert response.status_code == 400 and "does not match" in response.json()["error"]["message"]
    assert not ModelVersion.objects.exists()


@pytest.mark.parametrize("metadata", ['{"metrics": {"acc": "x"}}', "{broken", '{"metrics": {"acc": 1e400}}'])
def test_malformed_metadata_is_a_400(api_for, owner, model, metadata):
    api = api_for(owner)
    response = api.post(f"/api/v1/models/{model.name}/versions/", {"files": [upload("a", b"a")], "metadata": metadata}, format="multipart")
    assert response.status_code == 400 and response.json()["error"]["message"]
    assert not ModelVersion.objects.exists()


def test_an_empty_upload_is_a_400(api_for, owner, model):
    response = api_for(owner).post(f"/api/v1/models/{model.name}/versions/", {"metadata": "{}"}, format="multipart")
    assert response.status_code == 400 and "at least one file" in response.json()["error"]["message"]


def test_oversized_metadata_is_a_400(api_for, owner, model, settings):
    settings.METADATA_MAX_BYTES = 500
    response = _register(api_for(owner), model.name, {"a": b"a"}, {"description": "x" * 1000})
    assert response.status_code == 400 and "larger than 500 bytes" in response.json()["error"]["message"]


def test_an_oversized_file_is_a_400(api_for, owner, model, settings):
    settings.ARTIFACT_MAX_FILE_BYTES = 10
    response = _register(api_for(owner), model.name, {"big.bin": b"x" * 100})
    assert response.status_code == 400 and "larger than the limit" in response.json()["error"]["message"]
    assert not ModelVersion.objects.exists()


@pytest.mark.parametrize(
    "path",
    ["../../etc/passwd", "..%2f..%2fetc%2fpasswd", "%252e%252e/x", "a\\..\\b", "/abs", "a/../../b", "x%00y", "a#frag", "a?q=1"],
)
def test_traversal_forms_in_artifact_paths_are_refused(api_for, owner, model, path):
    response = _register(api_for(owner), model.name, {"f": b"data"}, {"artifacts": [{"path": path}]})
    assert response.status_code == 400, path
    assert not ModelVersion.objects.exists()


@pytest.mark.parametrize("path", ["..%2f..%2fsettings.py", "%2e%2e/%2e%2e/x", "..\\x", "sub/../config.json"])
def test_traversal_forms_in_download_paths_find_nothing(api_for, owner, model, path):
    register_version(model, owner, files={"config.json": b"{}"})
    response = api_for(owner).get(f"/api/v1/models/{model.name}/versions/1/artifacts/{path}")
    assert response.status_code == 404 and "error" in response.json()


def test_an_outsider_cannot_tell_a_model_exists(api_for, outsider, model, version):
    api = api_for(outsider)
    for url in [
        f"/api/v1/models/{model.name}/",
        f"/api/v1/models/{model.name}/versions/",
        f"/api/v1/models/{model.name}/versions/1/",
        f"/api/v1/models/{model.name}/stages/draft/",
        f"/api/v1/models/{model.name}/versions/1/artifacts/config.json",
        "/api/v1/models/no-such-model/",
    ]:
        response = api.get(url)
        assert response.status_code == 404, url
        assert response.json()["error"]["code"] == "not_found"
    assert api.get("/api/v1/models/").json()["results"] == []
    assert _register(api, model.name, {"a": b"a"}).status_code == 404


def test_a_viewer_cannot_register_or_request(api_for, reviewer, model, version):
    api = api_for(reviewer)
    assert _register(api, model.name, {"a": b"a"}).status_code == 403
    response = api.post(f"/api/v1/models/{model.name}/versions/1/transitions/", {"to_stage": "staging", "comment": "go"}, format="json")
    assert response.status_code == 403 and "permission" in response.json()["error"]["message"]


def test_an_illegal_transition_is_a_400_naming_the_allowed_ones(api_for, owner, model, version):
    response = api_for(owner).post(f"/api/v1/models/{model.name}/versions/1/transitions/", {"to_stage": "production", "comment": "go"}, format="json")
    assert response.status_code == 400 and "may move to: archived, staging" in response.json()["error"]["message"]


def test_the_list_is_paginated_and_searchable(api_for, owner):
    from apps.models.services import model_create

    for index in range(60):
        model_create(name=f"model-{index:02d}", actor=owner)
    api = api_for(owner)
    first = api.get("/api/v1/models/").json()
    assert first["count"] == 60 and len(first["results"]) == 50 and first["next"]
    assert [m["name"] for m in api.get("/api/v1/models/?search=model-07").json()["results"]] == ["model-07"]


def test_unknown_api_paths_answer_json_404(api_for, owner):
    response = api_for(owner).get("/api/v1/nothing/here/")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_a_huge_metadata_file_part_is_refused_without_reading_it_all(api_for, owner, model, settings):
    settings.METADATA_MAX_BYTES = 1000
    response = api_for(owner).post(
        f"/api/v1/models/{model.name}/versions/",
        {"files": [upload("a", b"a")], "metadata": upload("metadata.json", b"{" + b" " * 5_000_000 + b"}", "application/json")},
        format="multipart",
    )
    assert response.status_code == 400 and "larger than 1000 bytes" in response.json()["error"]["message"]


def test_the_stage_endpoint_answers_304_until_the_version_changes(api_for, owner, reviewer, model):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.validation.services import validation_run

    version = register_version(model, owner, files={"a.onnx": ONNX}, flavor="onnx")
    version_transition(version=version, to_stage="staging", actor=owner)
    api = api_for(owner)
    url = f"/api/v1/models/{model.name}/stages/staging/"
    first = api.get(url)
    etag = first["ETag"]
    assert first.status_code == 200 and first.json()["validation"]["status"] == "queued"
    with CaptureQueriesContext(connection) as ctx:
        assert api.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert len(ctx.captured_queries) <= 2  # the token and the fingerprint
    validation_run(job_id=version.validation_jobs.get().pk)
    changed = api.get(url, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag and changed.json()["validation"]["status"] == "passed"
    promote(version, requester=owner, approver=reviewer)
    assert api.get(url).status_code == 404
    assert api.get(f"/api/v1/models/{model.name}/stages/production/").json()["number"] == 1


def test_the_stage_endpoint_honours_group_and_superuser_permissions(api_for, owner, model, make_user):
    from django.contrib.auth.models import Group

    from apps.models.permissions import Action
    from apps.models.services import model_permission_grant

    register_version(model, owner)
    team, member, admin, stranger = Group.objects.create(name="team"), make_user("member"), make_user("root", is_superuser=True), make_user("stranger")
    member.groups.add(team)
    url = f"/api/v1/models/{model.name}/stages/draft/"
    assert api_for(member).get(url).status_code == 404
    model_permission_grant(model=model, actor=owner, action=Action.VIEW, group=team)
    assert api_for(member).get(url).json()["number"] == 1
    assert api_for(admin).get(url).json()["number"] == 1
    assert api_for(stranger).get(url).status_code == 404


def test_the_versions_list_query_count_does_not_grow_with_versions(api_for, owner, model):
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    api = api_for(owner)
    register_version(model, owner, metrics={"a": 1})

    def count():
        cache.clear()  # every version rendered afresh (a cached version's JSON costs no query at all)
        with CaptureQueriesContext(connection) as ctx:
            assert api.get(f"/api/v1/models/{model.name}/versions/").status_code == 200
        return len(ctx.captured_queries)

    count()  # the first request records the token's last use
    few = count()
    for index in range(5):
        register_version(model, owner, metrics={"a": index}, datasets=[{"name": "d", "uri": f"s3://d/{index}", "role": "training"}])
    assert count() == few


@pytest.mark.parametrize("hyperparameters", ['{"lr": 1e400}', '{"nested": {"x": [1, -1e999]}}'])
def test_infinite_hyperparameters_are_a_400_not_a_server_error(api_for, owner, model, hyperparameters):
    metadata = '{"hyperparameters": ' + hyperparameters + "}"
    response = api_for(owner).post(f"/api/v1/models/{model.name}/versions/", {"files": [upload("a", b"a")], "metadata": metadata}, format="multipart")
    assert response.status_code == 400 and "finite" in json.dumps(response.json())
    assert not ModelVersion.objects.exists()
