"""The versions list's query parameters (FilterSet), and PATCH of a version, through the API."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.approvals.services import version_transition
from apps.audit.models import AuditEntry
from apps.lineage.models import Dataset
from apps.models.permissions import Action
from apps.models.services import model_permission_grant
from apps.versions.lifecycle import Stage
from apps.versions.models import ModelVersion
from tests.factories import register_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def versions(model, owner, reviewer):
    """v1 onnx accuracy 0.80 (tag nlp), v2 accuracy 0.95 loss 0.1 on imdb in staging, v3 by the reviewer without metrics."""
    register_version(model, owner, flavor="onnx", metrics={"accuracy": 0.80, "loss": 0.4}, tags=["nlp"])
    second = register_version(
        model, owner, metrics={"accuracy": 0.95, "loss": 0.1}, datasets=[{"name": "imdb", "uri": "s3://d/imdb", "role": "training"}]
    )
    version_transition(version=second, to_stage=Stage.STAGING, actor=owner)
    model_permission_grant(model=model, actor=owner, action=Action.REGISTER, user=reviewer)
    register_version(model, reviewer)
    return model


def _numbers(api, query: str) -> list[int]:
    response = api.get(f"/api/v1/models/sentiment/versions/?{query}")
    assert response.status_code == 200, response.json()
    return [item["number"] for item in response.json()["results"]]


def _error(api, query: str) -> dict:
    response = api.get(f"/api/v1/models/sentiment/versions/?{query}")
    assert response.status_code == 400, response.content
    return response.json()["error"]


def test_versions_filter_by_stage_flavor_tag_dataset_and_registrant(api_for, owner, versions):
    api = api_for(owner)
    assert _numbers(api, "") == [3, 2, 1]
    assert _numbers(api, "stage=staging") == [2]
    assert _numbers(api, "stage=draft") == [3, 1]
    assert _numbers(api, "flavor=onnx") == [1]
    assert _numbers(api, "tag=nlp") == [1]
    assert _numbers(api, "tag=other") == []
    imdb = Dataset.objects.get(name="imdb")
    assert _numbers(api, f"dataset={imdb.pk}") == [2]
    assert _numbers(api, "registered_by=reviewer") == [3]
    assert _numbers(api, "stage=draft&registered_by=owner") == [1]


def test_versions_filter_by_created_range(api_for, owner, versions):
    ModelVersion.objects.filter(number=1).update(created_at=timezone.now() - timedelta(days=10))
    api = api_for(owner)
    since = (timezone.now() - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert _numbers(api, f"created_after={since}") == [3, 2]
    assert _numbers(api, f"created_before={since}") == [1]


def test_metric_ranges_match_only_versions_that_have_the_metric(api_for, owner, versions):
    api = api_for(owner)
    assert _numbers(api, "metric.accuracy__gte=0.9") == [2]
    assert _numbers(api, "metric.accuracy__gte=0.8") == [2, 1]
    assert _numbers(api, "metric.accuracy__gt=0.8") == [2]
    assert _numbers(api, "metric.loss__lt=0.2") == [2]
    assert _numbers(api, "metric.loss__lte=0.4&metric.accuracy__lt=0.9") == [1]
    assert _numbers(api, "metric.f1__gte=0") == []


def test_ordering_by_number_created_or_a_metric_puts_versions_without_it_last(api_for, owner, versions):
    api = api_for(owner)
    assert _numbers(api, "ordering=number") == [1, 2, 3]
    assert _numbers(api, "ordering=-created") == [3, 2, 1]
    assert _numbers(api, "ordering=-metric.accuracy") == [2, 1, 3]
    assert _numbers(api, "ordering=metric.accuracy") == [1, 2, 3]
    assert _numbers(api, "ordering=metric.loss&stage=draft") == [1, 3]


@pytest.mark.parametrize(
    "query, parameter",
    [
        ("stage=prod", "stage"),
        ("tag=", "tag"),
        ("flavor=keras", "flavor"),
        ("dataset=imdb", "dataset"),
        ("created_after=yesterday", "created_after"),
        ("metric.accuracy__gte=high", "metric.accuracy__gte"),
        ("metric.accuracy__gte=nan", "metric.accuracy__gte"),
        ("metric.accuracy__between=1", "metric.accuracy__between"),
        ("metric.accuracy=0.9", "metric.accuracy"),
        ("ordering=size", "ordering"),
        ("ordering=-metric.", "ordering"),
        ("stages=staging", "stages"),
        ("page=abc", "page"),
        ("page_size=0", "page_size"),
    ],
)
def test_an_unknown_parameter_or_a_bad_value_is_a_400_naming_it(api_for, owner, versions, query, parameter):
    error = _error(api_for(owner), query)
    assert error["code"] == "invalid"
    assert list(error["fields"]) == [parameter] and error["message"].startswith(f"{parameter}: ")


def test_a_400_names_every_bad_parameter_at_once(api_for, owner, versions):
    error = _error(api_for(owner), "stage=prod&colour=red&metric.loss__lt=x")
    assert sorted(error["fields"]) == ["colour", "metric.loss__lt", "stage"]
    assert "stage, tag" in " ".join(error["fields"]["colour"])  # says what the list accepts


def test_the_filtered_list_query_count_does_not_grow_with_versions(api_for, owner, model):
    api = api_for(owner)
    register_version(model, owner, metrics={"accuracy": 0.9}, tags=["a"])
    url = f"/api/v1/models/{model.name}/versions/?metric.accuracy__gte=0.1&tag=a&ordering=-metric.accuracy&stage=draft"

    def count() -> int:
        cache.clear()  # every version rendered afresh (a cached version's JSON costs no query at all)
        with CaptureQueriesContext(connection) as ctx:
            response = api.get(url)
        assert response.status_code == 200
        return len(ctx.captured_queries), response.json()["count"]

    count()  # the first request records the token's last use
    few, found = count()
    for index in range(5):
        register_version(model, owner, metrics={"accuracy": 0.5 + index / 10}, tags=["a", "b"])
    assert count() == (few, found + 5)


def test_an_outsider_gets_404_not_a_filter_error(api_for, outsider, versions):
    response = api_for(outsider).get("/api/v1/models/sentiment/versions/?stage=prod")
    assert response.status_code == 404


# -- PATCH -----------------------------------------------------------------------------------------------------------


def test_a_registrant_patches_a_versions_description_and_tags_and_it_is_audited(api_for, owner, version):
    url = f"/api/v1/models/{version.model.name}/versions/{version.number}/"
    response = api_for(owner).patch(url, {"description": "Retrained on May data", "tags": ["nlp", "baseline", "nlp"]}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["description"] == "Retrained on May data" and body["tags"] == ["baseline", "nlp"]
    entry = AuditEntry.objects.filter(action="version.updated").get()
    assert entry.actor_name == "owner" and entry.after == {"description": "Retrained on May data", "tags": ["baseline", "nlp"]}
    # keys left out keep their value
    assert api_for(owner).patch(url, {"description": ""}, format="json").json()["tags"] == ["baseline", "nlp"]
    assert api_for(owner).get(url).json()["description"] == ""


def test_patching_a_version_takes_the_same_permission_as_its_edit_page(api_for, reviewer, outsider, version):
    url = f"/api/v1/models/{version.model.name}/versions/{version.number}/"
    assert api_for(reviewer).patch(url, {"description": "x"}, format="json").status_code == 403
    assert api_for(outsider).patch(url, {"description": "x"}, format="json").status_code == 404
    version.refresh_from_db()
    assert version.description != "x" and not AuditEntry.objects.filter(action="version.updated").exists()


@pytest.mark.parametrize(
    "body, field",
    [({"stage": "production"}, "stage"), ({"metrics": {"a": 1}}, "metrics"), ({"tags": "nlp"}, "tags"), ({"description": 7}, "description")],
)
def test_a_version_patch_with_an_immutable_unknown_or_bad_field_is_a_400_that_changes_nothing(api_for, owner, version, body, field):
    response = api_for(owner).patch(f"/api/v1/models/{version.model.name}/versions/{version.number}/", body, format="json")
    assert response.status_code == 400 and field in response.json()["error"]["fields"]
    assert ModelVersion.objects.get(pk=version.pk).stage == Stage.DRAFT
    assert not AuditEntry.objects.filter(action="version.updated").exists()
