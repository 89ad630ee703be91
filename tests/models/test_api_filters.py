"""The models list's query parameters (FilterSet), and PATCH of a model, through the API."""

import pytest
from django.contrib.auth.models import Group

from apps.approvals.services import version_transition
from apps.audit.models import AuditEntry
from apps.models.models import RegisteredModel
from apps.models.services import model_create
from apps.versions.lifecycle import Stage
from tests.factories import register_version
from tests.helpers import queries_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(owner):
    """churn (team growth, tag tabular, a version in staging), fraud (tag tabular), sentiment-v2 (described 'reviews')."""
    growth = Group.objects.create(name="growth")
    owner.groups.add(growth)
    churn = model_create(name="churn", actor=owner, team=growth, tags=["tabular"])
    version_transition(version=register_version(churn, owner), to_stage=Stage.STAGING, actor=owner)
    model_create(name="fraud", actor=owner, tags=["tabular", "risk"])
    model_create(name="sentiment-v2", actor=owner, description="Classifies reviews")
    return growth


def _names(api, query: str) -> list[str]:
    response = api.get(f"/api/v1/models/?{query}")
    assert response.status_code == 200, response.json()
    return [item["name"] for item in response.json()["results"]]


def test_models_filter_by_search_tag_team_and_stage_present(api_for, owner, catalog):
    api = api_for(owner)
    assert _names(api, "") == ["churn", "fraud", "sentiment-v2"]
    assert _names(api, "search=reviews") == ["sentiment-v2"]
    assert _names(api, "tag=tabular") == ["churn", "fraud"]
    assert _names(api, "tag=tabular&tag=risk") == ["fraud"]  # the last value counts, as in every FilterSet
    assert _names(api, "team=growth") == ["churn"]
    assert _names(api, "stage=staging") == ["churn"]
    assert _names(api, "stage=production") == []
    assert _names(api, "ordering=-name") == ["sentiment-v2", "fraud", "churn"]


@pytest.mark.parametrize(
    "query, parameter",
    [("stage=prod", "stage"), ("tag=", "tag"), ("team=nobody", "team"), ("q=churn", "q"), ("ordering=size", "ordering"), ("page=0", "page")],
)
def test_an_unknown_parameter_or_a_bad_value_is_a_400_naming_it(api_for, owner, catalog, query, parameter):
    response = api_for(owner).get(f"/api/v1/models/?{query}")
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [parameter]


def test_the_filtered_models_list_query_count_does_not_grow_with_models(api_for, owner, catalog):
    api = api_for(owner)
    url = "/api/v1/models/?tag=tabular&stage=staging&team=growth"
    queries_for(api, url)  # the first request records the token's last use
    few = queries_for(api, url)
    for index in range(5):
        model = model_create(name=f"m{index}", actor=owner, team=catalog, tags=["tabular", "x"])
        version_transition(version=register_version(model, owner), to_stage=Stage.STAGING, actor=owner)
    assert queries_for(api, url) == few
    assert api.get(url).json()["count"] == 6


# -- PATCH -----------------------------------------------------------------------------------------------------------


def test_a_manager_patches_description_tags_and_team_and_it_is_audited(api_for, owner, reviewer, model):
    team = Group.objects.create(name="nlp")
    owner.groups.add(team)
    response = api_for(owner).patch(
        f"/api/v1/models/{model.name}/", {"description": "New card", "tags": [" nlp ", "text"], "team": "nlp"}, format="json"
    )
    assert response.status_code == 200
    assert response.json() | {"created_at": None} == {
        "name": "sentiment", "description": "New card", "team": "nlp", "tags": ["nlp", "text"],
        "latest_version": None, "production_version": None, "created_at": None,
    }
    entry = AuditEntry.objects.filter(action="model.updated").get()
    assert entry.before["team"] is None and entry.after == {"name": "sentiment", "description": "New card", "team": "nlp", "tags": ["nlp", "text"]}
    # the team's rights moved with it, as from the edit page
    teammate = reviewer.__class__.objects.create_user("teammate")
    teammate.groups.add(team)
    assert api_for(teammate).get(f"/api/v1/models/{model.name}/").status_code == 200
    # keys left out keep their value; null clears the team
    assert api_for(owner).patch(f"/api/v1/models/{model.name}/", {"team": None}, format="json").json()["tags"] == ["nlp", "text"]
    assert RegisteredModel.objects.get(pk=model.pk).team is None


def test_patching_a_model_takes_the_manage_permission(api_for, reviewer, outsider, model):
    assert api_for(reviewer).patch(f"/api/v1/models/{model.name}/", {"description": "x"}, format="json").status_code == 403
    assert api_for(outsider).patch(f"/api/v1/models/{model.name}/", {"description": "x"}, format="json").status_code == 404
    assert RegisteredModel.objects.get(pk=model.pk).description == "A **model** card."
    assert not AuditEntry.objects.filter(action="model.updated").exists()


@pytest.mark.parametrize(
    "body, field, message",
    [
        ({"name": "renamed"}, "name", "is not a field here"),
        ({"team": "admins"}, "team", "only assign a team you belong to"),
        ({"team": "no-such-team"}, "team", "No team named"),
        ({"tags": "nlp"}, "tags", "list"),
        ({"tags": ["x" * 65]}, "tags", "64"),
        ({"description": 7}, "description", "must be a string"),
    ],
)
def test_a_bad_model_patch_is_a_400_naming_the_field_and_changes_nothing(api_for, owner, model, body, field, message):
    Group.objects.create(name="admins")
    response = api_for(owner).patch(f"/api/v1/models/{model.name}/", body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert field in error["fields"] and message in error["message"]
    assert not AuditEntry.objects.filter(action="model.updated").exists()


def test_a_model_patch_must_be_json(api_for, owner, model):
    response = api_for(owner).patch(f"/api/v1/models/{model.name}/", "description=x", content_type="text/plain")
    assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_media_type"
