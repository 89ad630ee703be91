"""The MLflow endpoints' edges, through HTTP without a live server: errors in MLflow's shape, scopes checked before
a body is read, the strict filter parser, pinned query counts, and abandoned uploads swept with the unused blobs."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import TokenScope
from apps.accounts.services import api_token_create
from apps.approvals.selectors import pending_pointer_requests
from apps.approvals.services import alias_policy_update, alias_set
from apps.mlflow_api.models import StagedArtifact
from apps.mlflow_api.search import parse_filter
from apps.mlflow_api.services import StoredBlob
from apps.versions.blobs import artifact_storage, blob_collect_garbage
from apps.versions.models import BlobReservation
from apps.versions.paths import blob_key
from tests.factories import register_version

pytestmark = pytest.mark.django_db
API = "/api/2.0/mlflow"


def _client(user, scope=TokenScope.FULL) -> APIClient:
    client = APIClient()
    _, secret = api_token_create(user=user, name="mlflow", scope=scope)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_errors_have_mlflows_shape_and_statuses(owner, outsider, model, version):
    anonymous = APIClient().get(f"{API}/registered-models/get", {"name": model.name})
    assert anonymous.status_code == 401 and anonymous.json()["error_code"] == "UNAUTHENTICATED"
    hidden = _client(outsider).get(f"{API}/model-versions/get", {"name": model.name, "version": "1"})
    assert hidden.status_code == 404 and hidden.json() == {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "No such model."}
    bad_number = _client(owner).get(f"{API}/model-versions/get", {"name": model.name, "version": "one"})
    assert bad_number.status_code == 400 and bad_number.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    unknown = _client(owner).post(f"{API}/runs/create", {}, format="json")
    assert unknown.status_code == 404 and unknown.json()["error_code"] == "ENDPOINT_NOT_FOUND" and "out of scope" in unknown.json()["message"]
    multipart = _client(owner).post("/api/2.0/mlflow-artifacts/mpu/create/uploads/a", {}, format="json")
    assert multipart.status_code == 404 and multipart.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    got = _client(owner).get(f"{API}/model-versions/get", {"name": model.name, "version": "1"}).json()["model_version"]
    assert got["version"] == "1" and got["status"] == "READY" and isinstance(got["creation_timestamp"], int)


def test_a_narrow_token_is_refused_before_the_body_is_read(owner, model):
    reader = _client(owner, TokenScope.READ)
    refused = reader.generic("PUT", "/api/2.0/mlflow-artifacts/artifacts/uploads/a/model.bin", b"x" * 1000, content_type="application/octet-stream")
    assert refused.status_code == 403 and refused.json()["error_code"] == "PERMISSION_DENIED" and "'read' scope" in refused.json()["message"]
    not_json = reader.generic("POST", f"{API}/model-versions/create", b"{not json", content_type="application/json")
    assert not_json.status_code == 403  # the scope decides before the body is parsed
    assert not StagedArtifact.objects.exists()
    into_versions = _client(owner).generic("PUT", "/api/2.0/mlflow-artifacts/artifacts/models/sentiment/versions/1/x.bin", b"x")
    assert into_versions.status_code == 400 and "never change" in into_versions.json()["message"]


def test_the_filter_parser_refuses_what_it_does_not_understand(owner, model):
    for refused in ("name = 'a' OR name = 'b'", "name = a", "flavor = 'x'", "version_number > '3'", "name = 'unterminated", "run_id IN 'a'"):
        answer = _client(owner).get(f"{API}/model-versions/search", {"filter": refused})
        assert answer.status_code == 400 and answer.json()["error_code"] == "INVALID_PARAMETER_VALUE", refused
    answer = _client(owner).get(f"{API}/registered-models/search", {"filter": "run_id = 'x'"})
    assert answer.status_code == 400
    assert [c.key for c in parse_filter("tags.`a b` = '1' AND tag.c != '2'")] == ["a b", "c"]
    for bad_token in ("%%%", "eyJvZmZzZXQiOiAtMX0="):  # not base64 JSON; a negative offset
        assert _client(owner).get(f"{API}/model-versions/search", {"page_token": bad_token}).status_code == 400


def test_lookups_and_searches_run_a_fixed_number_of_queries(owner, model):
    client = _client(owner)
    url = f"{API}/registered-models/alias"

    def counted(path, params):
        client.get(path, params)  # the token's first use stamps last_used_at; the alias answer is cached after it
        with CaptureQueriesContext(connection) as captured:
            assert client.get(path, params).status_code == 200
        return len(captured)

    first = register_version(model, owner)
    alias_set(model=model, alias="champion", version=first, actor=owner)
    before = (counted(url, {"name": model.name, "alias": "champion"}), counted(f"{API}/model-versions/search", {"filter": f"name='{model.name}'"}),
              counted(f"{API}/registered-models/search", {}))
    for _ in range(3):
        alias_set(model=model, alias="champion", version=register_version(model, owner), actor=owner)
    after = (counted(url, {"name": model.name, "alias": "champion"}), counted(f"{API}/model-versions/search", {"filter": f"name='{model.name}'"}),
             counted(f"{API}/registered-models/search", {}))
    assert before == after and before[0] == 1  # one query decides (the token is remembered, the JSON cached)


def test_abandoned_uploads_go_with_the_unused_blobs(owner):
    client = _client(owner)
    assert client.generic("PUT", "/api/2.0/mlflow-artifacts/artifacts/uploads/run/model.bin", b"weights").status_code == 200
    staged = StagedArtifact.objects.get()
    listing = client.get("/api/2.0/mlflow-artifacts/artifacts", {"path": "uploads/run"}).json()
    assert listing == {"files": [{"path": "model.bin", "is_dir": False, "file_size": 7}]}
    assert b"".join(client.get("/api/2.0/mlflow-artifacts/artifacts/uploads/run/model.bin").streaming_content) == b"weights"
    assert blob_collect_garbage(older_than=timedelta(0)) == []  # kept while its reservation lasts (MLFLOW_UPLOAD_HOURS)
    BlobReservation.objects.filter(pk=staged.reservation_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert blob_collect_garbage(older_than=timedelta(0)) == [blob_key(staged.sha256)]
    assert not StagedArtifact.objects.exists() and not artifact_storage().exists(blob_key(staged.sha256))
    assert json.loads(client.get("/api/2.0/mlflow-artifacts/artifacts", {"path": "uploads/run"}).content) == {"files": []}


def test_a_stored_blob_is_opened_only_when_read(owner):
    client = _client(owner)
    client.generic("PUT", "/api/2.0/mlflow-artifacts/artifacts/uploads/run/a.bin", b"abc" * 1000)
    staged = StagedArtifact.objects.get()
    blob = StoredBlob(staged.sha256, staged.size)
    assert blob.seek(0) == 0 and blob._file is None  # what registration does with a file it finds stored
    saved = artifact_storage().save("copies/a.bin", blob)  # and what storing it would read
    assert artifact_storage().open(saved).read() == b"abc" * 1000
    blob.close()


def test_the_version_page_shows_what_the_mlflow_client_recorded(owner, model, web_for):
    client = _client(owner)
    client.generic("PUT", "/api/2.0/mlflow-artifacts/artifacts/uploads/run/model.bin", b"weights")
    created = client.post(f"{API}/model-versions/create", {"name": model.name, "source": "mlflow-artifacts:/uploads/run",
                                                           "tags": [{"key": "framework", "value": "<b>sklearn</b>"}]}, format="json")
    assert created.status_code == 200, created.content
    page = web_for(owner).get(f"/models/{model.name}/versions/1/").content.decode()
    assert 'id="mlflow"' in page and "mlflow-artifacts:/uploads/run" in page and "&lt;b&gt;sklearn&lt;/b&gt;" in page
    register_version(model, owner)
    assert 'id="mlflow"' not in web_for(owner).get(f"/models/{model.name}/versions/2/").content.decode()  # nothing recorded: no card


def test_deleting_an_alias_no_alias_may_have_says_the_name_is_invalid(owner, model, version):
    answer = _client(owner).delete(f"{API}/registered-models/alias", {"name": model.name, "alias": "staging"}, format="json")
    assert answer.status_code == 400 and answer.json()["error_code"] == "INVALID_PARAMETER_VALUE" and "reserved" in answer.json()["message"]
    absent = _client(owner).delete(f"{API}/registered-models/alias", {"name": model.name, "alias": "champion"}, format="json")
    assert absent.status_code == 404 and absent.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_setting_a_governed_alias_again_names_its_pending_request_and_opens_no_other(owner, model, version):
    alias_policy_update(model=model, alias="champion", actor=owner, required_approvals=1)
    body = {"name": model.name, "alias": "champion", "version": str(version.number)}
    first = _client(owner).post(f"{API}/registered-models/alias", body, format="json")
    (pending,) = pending_pointer_requests(model, "champion")
    again = _client(owner).post(f"{API}/registered-models/alias", body, format="json")
    assert first.status_code == again.status_code == 403 and f"#{pending.pk}" in again.json()["message"]
    assert pending_pointer_requests(model, "champion").count() == 1
