import json

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.lineage.models import Dataset, VersionParent
from apps.versions.models import ModelVersion
from tests.factories import register_version, upload

from .conftest import DATASET, parent
from .graphs import bulk_versions, chain, trained_on

pytestmark = pytest.mark.django_db


def _register(api, name: str, metadata: dict):
    return api.post(f"/api/v1/models/{name}/versions/", {"files": [upload("model.bin", b"w")], "metadata": json.dumps(metadata)}, format="multipart")


# -- datasets -----------------------------------------------------------------------------------------------------


def test_any_user_may_register_a_dataset_and_a_team_mate_repeating_it_gets_the_same_one(api_for, owner, reviewer, team):
    body = {"name": "wiki", "uri": "s3://data/wiki", "digest": "2024-06", "size_bytes": 1 << 40, "description": "dump", "team": "nlp-team"}
    created = api_for(owner).post("/api/v1/datasets/", body, format="json")
    again = api_for(reviewer).post("/api/v1/datasets/", {"name": "other name", "uri": "s3://data/wiki", "digest": "2024-06"}, format="json")
    assert created.status_code == 201 and again.status_code == 200
    assert created.json()["id"] == again.json()["id"] and again.json()["name"] == "wiki"
    assert (created.json()["owner"], created.json()["team"]) == ("owner", "nlp-team")
    assert created.json()["size_bytes"] == 1 << 40 and Dataset.objects.count() == 1


def test_repeating_a_dataset_the_caller_may_not_see_is_a_400_that_tells_nothing_about_it(api_for, owner, outsider):
    api_for(owner).post("/api/v1/datasets/", {"name": "payroll", "uri": "s3://hr/pay", "digest": "v1", "description": "salaries"}, format="json")
    response = api_for(outsider).post("/api/v1/datasets/", {"name": "mine", "uri": "s3://hr/pay", "digest": "v1"}, format="json")
    assert response.status_code == 400 and "already registered" in response.json()["error"]["fields"]["uri"][0]
    assert "payroll" not in response.content.decode() and "salaries" not in response.content.decode() and "owner" not in response.content.decode()
    assert Dataset.objects.get().name == "payroll"


@pytest.mark.parametrize("team", ["hr", "no-such-team", 7])
def test_a_team_the_caller_is_not_in_is_a_400_whether_or_not_it_exists(api_for, owner, team):
    Group.objects.create(name="hr")
    response = api_for(owner).post("/api/v1/datasets/", {"name": "x", "uri": "s3://x", "team": team}, format="json")
    assert response.status_code == 400 and "team" in response.json()["error"]["fields"]
    assert not Dataset.objects.exists()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"uri": "s3://x"}, "name"),
        ({"name": "x", "uri": "s3://x", "size_bytes": "big"}, "size_bytes"),
        ({"name": "x", "uri": "s3://x", "size_bytes": -1}, "size_bytes"),
        ({"name": "x", "uri": ["s3://x"]}, "uri"),
    ],
)
def test_a_bad_dataset_is_a_400_naming_the_field(api_for, owner, body, field):
    response = api_for(owner).post("/api/v1/datasets/", body, format="json")
    assert response.status_code == 400 and field in response.json()["error"]["fields"]
    assert not Dataset.objects.exists()


def test_unknown_dataset_keys_and_non_objects_are_refused(api_for, owner):
    api = api_for(owner)
    assert "Unknown keys: owner" in api.post("/api/v1/datasets/", {"name": "x", "uri": "s3://x", "owner": "me"}, format="json").json()["error"]["message"]
    assert api.post("/api/v1/datasets/", [1, 2], format="json").status_code == 400
    assert api.post("/api/v1/datasets/", data="name=x", content_type="text/plain").status_code == 415


def test_datasets_need_a_token(client):
    assert client.post("/api/v1/datasets/", {"name": "x", "uri": "s3://x"}, content_type="application/json").status_code == 401
    assert client.get("/api/v1/datasets/").status_code == 401


def test_the_dataset_list_counts_only_versions_the_caller_may_view(api_for, reviewer, owner, model, secret, stranger):
    register_version(model, owner, datasets=[DATASET])
    register_version(secret, stranger, datasets=[DATASET])
    [row] = api_for(reviewer).get("/api/v1/datasets/?search=imdb").json()["results"]
    assert row["versions_using"] == 1 and row["uri"] == DATASET["uri"]
    assert api_for(reviewer).get("/api/v1/datasets/?search=nothing-like-it").json()["count"] == 0


# -- impact -------------------------------------------------------------------------------------------------------


def test_impact_through_the_api_follows_fine_tuning_and_filters_by_permission(api_for, owner, reviewer, outsider, model, secret, stranger):
    register_version(model, owner, datasets=[DATASET])                                  # sentiment v1
    register_version(model, owner, parents=[parent(model, 1)])                          # sentiment v2
    register_version(secret, stranger, parents=[parent(model, 2)])                      # secret-model v1
    register_version(model, owner, parents=[parent(secret, 1, "distilled_from")])      # sentiment v3
    dataset = Dataset.objects.get()
    url = f"/api/v1/datasets/{dataset.pk}/impact/"

    owners = api_for(owner).get(url).json()
    reviewers = api_for(reviewer).get(url)
    outsiders = api_for(outsider).get(url)

    assert [(r["model"], r["version"], r["depth"]) for r in owners["results"]] == [("sentiment", 1, 0), ("sentiment", 2, 1), ("secret-model", 1, 2), ("sentiment", 3, 3)]
    assert [(r["model"], r["version"], r["depth"]) for r in reviewers.json()["results"]] == [("sentiment", 1, 0), ("sentiment", 2, 1), ("sentiment", 3, 3)]
    assert "secret" not in reviewers.content.decode()
    assert outsiders.status_code == 404 and DATASET["uri"] not in outsiders.content.decode()
    assert owners["results"][1]["via"] == [{"model": "sentiment", "version": 1, "relation": "fine_tuned_from", "hidden": False}]
    hidden = {"model": None, "version": None, "relation": None, "hidden": True}
    assert reviewers.json()["results"][2]["via"] == [hidden]  # sentiment v3: from a version the reviewer may not view, unnamed


def test_an_unknown_dataset_is_a_json_404(api_for, owner):
    response = api_for(owner).get("/api/v1/datasets/12345/impact/")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_impact_api_queries_do_not_grow_with_depth(api_for, reviewer, model):
    api = api_for(reviewer)
    dataset = Dataset.objects.create(name="d", uri="s3://d")
    root = bulk_versions(model, 1)[0]
    trained_on(dataset, [root])

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert api.get(f"/api/v1/datasets/{dataset.pk}/impact/").status_code == 200
        return len(ctx.captured_queries)

    count()  # the token's first use of the day writes its last-used date
    shallow = count()
    chain(model, 200, root=root)
    assert count() == shallow == 2  # the dataset, the impact (one recursive query); the token is remembered


# -- registration with lineage ----------------------------------------------------------------------------------


def test_registering_through_the_api_records_parents_and_the_run(api_for, owner, model, version):
    response = _register(api_for(owner), "sentiment", {
        "parents": [parent(model, 1, "distilled_from")],
        "run": {"id": "mlflow-9", "url": "https://mlflow.example.com/#/runs/9"},
        "datasets": [{**DATASET, "size_bytes": 77}],
    })
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["run"] == {"id": "mlflow-9", "url": "https://mlflow.example.com/#/runs/9"}
    assert body["datasets"][0]["size_bytes"] == 77 and body["datasets"][0]["id"] == Dataset.objects.get().pk
    assert body["lineage"]["graph_url"].endswith("/api/v1/models/sentiment/versions/2/lineage/")
    child = ModelVersion.objects.get(number=2)
    assert child.parent_links.get().parent == version


@pytest.mark.parametrize(
    "metadata, message",
    [
        ({"parents": [{"model": "sentiment", "version": 9, "relation": "fine_tuned_from"}]}, "Parent #1: sentiment v9 is unknown or not visible to you."),
        ({"parents": [{"model": "secret-model", "version": 1, "relation": "fine_tuned_from"}]}, "Parent #1: secret-model v1 is unknown or not visible to you."),
        ({"parents": [{"model": "sentiment", "version": 2, "relation": "fine_tuned_from"}]}, "a version cannot be its own parent"),
        ({"parents": [{"model": "sentiment", "version": 1}]}, "'relation' must be one of"),
        ({"run": {"url": "file:///etc/passwd"}}, "must be an http:// or https:// URL"),
    ],
)
def test_bad_lineage_through_the_api_is_a_400_and_stores_nothing(api_for, owner, reviewer, model, version, secret, stranger, metadata, message):
    from apps.models.permissions import Action
    from apps.models.services import model_permission_grant

    register_version(secret, stranger)
    model_permission_grant(model=model, actor=owner, action=Action.REGISTER, user=reviewer)
    response = _register(api_for(reviewer), "sentiment", metadata)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert ModelVersion.objects.filter(model=model).count() == 1 and not VersionParent.objects.exists()


# -- a version's lineage and impact ----------------------------------------------------------------------------------


def test_a_versions_lineage_and_impact_through_the_api(api_for, owner, reviewer, outsider, model, secret, stranger):
    register_version(model, owner, datasets=[DATASET])
    register_version(model, owner, parents=[parent(model, 1)])
    register_version(secret, stranger, parents=[parent(model, 1)])
    lineage = api_for(reviewer).get("/api/v1/models/sentiment/versions/1/lineage/")
    assert lineage.status_code == 200
    assert {n["label"] for n in lineage.json()["nodes"]} == {"sentiment v1", "sentiment v2", "imdb@sha256:aa11"}
    assert "secret" not in lineage.content.decode()
    impact = api_for(reviewer).get("/api/v1/models/sentiment/versions/1/impact/").json()
    assert [(r["model"], r["version"]) for r in impact["results"]] == [("sentiment", 2)]
    assert [(r["model"], r["version"]) for r in api_for(owner).get("/api/v1/models/sentiment/versions/1/impact/").json()["results"]] == [("secret-model", 1), ("sentiment", 2)]
    assert api_for(outsider).get("/api/v1/models/sentiment/versions/1/lineage/").status_code == 404
    assert api_for(outsider).get("/api/v1/models/sentiment/versions/1/impact/").status_code == 404
    assert api_for(owner).get("/api/v1/models/sentiment/versions/7/lineage/").status_code == 404


@pytest.mark.parametrize(
    "body, field, message",
    [
        ({"name": "x", "uri": "s3://x\x01"}, "uri", "must not contain control characters."),
        ({"name": "  ", "uri": "s3://x"}, "name", "is required."),
        ({"name": "x", "uri": "s3://x", "team": "nobody"}, "team", "Unknown team, or you are not a member of it."),
        ({"name": "x", "uri": "s3://x", "team": 5}, "team", "must be a string."),
        ({"name": "x" * 201, "uri": "s3://x"}, "name", "must be at most 200 characters."),
    ],
)
def test_a_dataset_body_is_checked_by_the_version_documents_dataset_rules(api_for, owner, body, field, message):
    response = api_for(owner).post("/api/v1/datasets/", body, format="json")
    assert response.status_code == 400 and response.json()["error"]["fields"][field] == [message]
    assert not Dataset.objects.exists()


def test_a_dataset_from_a_version_document_and_one_registered_on_its_own_are_one_when_they_differ_by_spaces(api_for, owner, model):
    register_version(model, owner, datasets=[{"name": " imdb ", "uri": " s3://data/imdb ", "digest": "v1 "}])
    again = api_for(owner).post("/api/v1/datasets/", {"name": "imdb", "uri": "s3://data/imdb", "digest": "v1"}, format="json")
    assert again.status_code == 200 and Dataset.objects.get().uri == "s3://data/imdb"
