"""The API's version reads (list, detail, stage lookup) render rows directly (apps.versions.rendering); the declared
VersionSerializer stays the schema. These tests pin that both write the same JSON, key order included, for fully
populated versions and for bare ones, and that the reads run a fixed number of queries whatever the data."""

import json

import pytest
from django.test import RequestFactory

from apps.catalog.selectors import version_page_details, version_rows, versions_with_details
from apps.validation.models import ValidationJob
from apps.validation.services import validation_policy_update, validation_run
from apps.versions.models import ModelVersion
from apps.versions.rendering import json_bytes, versions_rendered
from apps.versions.serializers import VersionSerializer
from apps.approvals.services import version_transition
from tests.factories import register_version
from tests.helpers import queries_for
from tests.versions.test_version_document import CONFIG, DOCUMENT, VOCAB, WEIGHTS

pytestmark = pytest.mark.django_db

ACCURACY = {"metric": "accuracy", "direction": "higher", "allowed_regression": 0.01, "regression_kind": "absolute", "min_value": None, "max_value": None}
# Characters reverse() quotes (space, '+' kept, non-ASCII) in an artifact path of the download URL.
FILES = {"model.safetensors": WEIGHTS, "config.json": CONFIG, "tokenizer/vocab.txt": VOCAB, "données/poids v1+final (2).bin": b"x"}


def _document(**changes) -> dict:
    return {key: value for key, value in DOCUMENT.items() if key not in ("parents", "artifacts")} | changes


@pytest.fixture
def versions(model, owner, make_user):
    """v1: the pinned quality baseline; v2: every field filled, validated against v1, in staging; v3: bare, never
    validated, its registrant's account deleted."""
    baseline = register_version(model, owner, metrics={"accuracy": 0.9})
    validation_policy_update(model=model, actor=owner, required_file_patterns=[], pinned_baseline=baseline, rules=[ACCURACY])
    full = register_version(model, owner, files=FILES, **_document())
    validation_run(job_id=full.validation_jobs.get().pk)
    version_transition(version=full, to_stage="staging", actor=owner)
    leaver = make_user("leaver", is_superuser=True)
    bare = register_version(model, leaver, files={"a.bin": b"a"})
    ValidationJob.objects.filter(version=bare).delete()
    leaver.delete()
    return {version.number: version for version in ModelVersion.objects.filter(model=model)}


def _serialized(version_pk, request=None) -> dict:
    """What the declared serializer writes for the version (the schema's source)."""
    return VersionSerializer(versions_with_details(ModelVersion.objects.filter(pk=version_pk)).get(), context={"request": request}).data


def _same(left, right) -> bool:
    """The same JSON, key order included; `left` may hold raw JSON text (orjson fragments) as the rendering writes it."""
    return json.dumps(json.loads(json_bytes(left))) == json.dumps(right)


def test_the_fixture_fills_what_the_json_can_show(versions):
    full = _serialized(versions[2].pk)
    assert full["run"] and full["datasets"] and full["metrics"] and full["tags"] and full["code"]["dirty"] is False and full["inspection"]
    assert len(full["validation"]["checks"]) == 5 and full["quality"]["baseline_version"] == 1 and full["quality"]["rules"]
    assert full["artifacts"][1]["download_url"].endswith("/versions/2/artifacts/donn%C3%A9es/poids%20v1+final%20(2).bin")
    bare = _serialized(versions[3].pk)
    assert bare["run"] is None and bare["created_by"] is None and bare["validation"] == {"status": "none", "checks": []}


def test_the_detail_is_the_serializers_json_for_every_version(versions, api_for, owner):
    api, request = api_for(owner), RequestFactory().get("/")
    for number, version in versions.items():
        response = api.get(f"/api/v1/models/sentiment/versions/{number}/")
        assert response.status_code == 200
        assert _same(response.json(), _serialized(version.pk, request)), number


def test_the_list_items_are_the_serializers_json(versions, api_for, owner):
    listed = api_for(owner).get("/api/v1/models/sentiment/versions/").json()["results"]
    assert _same(listed, [_serialized(versions[number].pk, RequestFactory().get("/")) for number in (3, 2, 1)])


def test_the_stage_lookup_is_the_serializers_json(versions, api_for, owner):
    response = api_for(owner).get("/api/v1/models/sentiment/stages/staging/")
    assert _same(json.loads(response.content), _serialized(versions[2].pk, RequestFactory().get("/")))


def test_without_a_request_both_write_relative_urls(versions):
    rows = list(version_rows(ModelVersion.objects.filter(model=versions[2].model)))
    rendered = versions_rendered(rows, version_page_details(rows))
    assert _same(rendered, [_serialized(versions[number].pk) for number in (3, 2, 1)])
    assert rendered[1]["lineage"]["graph_url"] == "/api/v1/models/sentiment/versions/2/lineage/"


def test_the_version_reads_run_a_pinned_number_of_queries_whatever_the_data(versions, api_for, owner, model):
    api = api_for(owner)
    api.get("/api/v1/models/sentiment/stages/staging/")  # the first request records the token's last use
    assert queries_for(api, "/api/v1/models/sentiment/versions/2/") == 1  # the stage lookup cached v2's JSON; the token is remembered
    assert queries_for(api, "/api/v1/models/sentiment/versions/1/") == 8  # fingerprint, the row, six relations
    # Each version's JSON is cached under its fingerprint, whichever read rendered it: a list renders only the versions
    # the cache lacks (rows, count, then one query per relation), and reads of versions it holds cost the fingerprint
    # (or the list's rows and count); the token is remembered from the first request.
    urls = {
        "list": "/api/v1/models/sentiment/versions/",
        "list again": "/api/v1/models/sentiment/versions/",
        "list of 200": "/api/v1/models/sentiment/versions/?page_size=200",
        "detail": "/api/v1/models/sentiment/versions/3/",
        "stage": "/api/v1/models/sentiment/stages/staging/",
    }
    pinned = {"list": 9, "list again": 3, "list of 200": 3, "detail": 1, "stage": 1}
    # The only version the cache lacks at first is v3, never validated: no job, so no job or checks query.
    assert {key: queries_for(api, url) for key, url in urls.items()} == pinned | {"list": 7}
    for index in range(5):
        extra = register_version(model, owner, files={"a.bin": b"a", "b.bin": bytes([index])}, **_document(metrics={"accuracy": index / 10}))
        validation_run(job_id=extra.validation_jobs.get().pk)
    assert {key: queries_for(api, url) for key, url in urls.items()} == pinned


def test_a_list_answers_cached_and_fresh_versions_alike(versions, api_for, owner, model):
    api = api_for(owner)
    assert api.get("/api/v1/models/sentiment/versions/2/").status_code == 200  # v2 cached, v1 and v3 not
    listed = api.get("/api/v1/models/sentiment/versions/").json()["results"]
    assert _same(listed, [_serialized(versions[number].pk, RequestFactory().get("/")) for number in (3, 2, 1)])
    assert api.patch("/api/v1/models/sentiment/versions/1/", {"description": "changed"}, format="json").status_code == 200
    listed = api.get("/api/v1/models/sentiment/versions/").json()["results"]
    assert listed[2]["description"] == "changed"
    assert _same(listed, [_serialized(versions[number].pk, RequestFactory().get("/")) for number in (3, 2, 1)])


def test_a_changed_version_is_answered_afresh_under_a_new_etag(versions, api_for, owner):
    api = api_for(owner)
    url = "/api/v1/models/sentiment/versions/2/"
    first = api.get(url)
    assert api.get(url, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    assert api.patch(url, {"tags": ["fresh"]}, format="json").status_code == 200
    again = api.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 200 and again["ETag"] != first["ETag"] and again.json()["tags"] == ["fresh"]
    assert _same(again.json(), _serialized(versions[2].pk, RequestFactory().get("/")))
    assert api.get("/api/v1/models/sentiment/versions/9/").json()["error"]["message"] == "Model 'sentiment' has no version 9."
