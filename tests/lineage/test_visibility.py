"""Who sees which dataset, and what impact lists say about versions the reader may not view, through pages and API.

A dataset is seen through the versions the reader may view that use it, or, registered on its own, by its owner and
its team. A parent the reader may not view is "via a version you cannot view", never named, counted or qualified.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.lineage.models import Dataset
from tests.factories import register_version
from tests.helpers import queries_for

from .conftest import parent
from .graphs import bulk_versions, chain, trained_on

pytestmark = pytest.mark.django_db

PAYROLL = {"name": "payroll-2024", "uri": "s3://hr/payroll", "digest": "v9", "description": "salaries by name", "role": "training"}
HIDDEN = {"model": None, "version": None, "relation": None, "hidden": True}
SECRETS = ("payroll", "s3://hr", "salaries", "stranger")


def _reveals(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def _api_queries(api, url: str) -> int:
    api.get(url)  # the token's first use writes its last-used time
    with CaptureQueriesContext(connection) as ctx:
        assert api.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_a_dataset_first_registered_with_a_hidden_models_version_is_not_readable_on_any_page(web_for, reviewer, owner, secret, stranger):
    register_version(secret, stranger, datasets=[PAYROLL])
    dataset = Dataset.objects.get()
    client = web_for(reviewer)
    assert _reveals(client.get("/datasets/").content.decode()) == []
    assert _reveals(client.get("/datasets/?q=v9").content.decode()) == []
    assert client.get(f"/datasets/{dataset.pk}/").status_code == 404
    assert "payroll-2024" in web_for(owner).get("/datasets/?q=payroll").content.decode()  # the owner may view secret-model


def test_a_dataset_first_registered_with_a_hidden_models_version_is_not_readable_through_the_api(api_for, reviewer, owner, secret, stranger):
    register_version(secret, stranger, datasets=[PAYROLL])
    dataset = Dataset.objects.get()
    api = api_for(reviewer)
    listed = api.get("/api/v1/datasets/")
    searched = api.get("/api/v1/datasets/?search=hr")
    assert listed.json()["count"] == 0 and searched.json()["count"] == 0 and _reveals(listed.content.decode() + searched.content.decode()) == []
    for url in (f"/api/v1/datasets/{dataset.pk}/", f"/api/v1/datasets/{dataset.pk}/impact/"):
        response = api.get(url)
        assert response.status_code == 404 and _reveals(response.content.decode()) == [], url
    assert api.get("/api/v1/datasets/999999/").json() == response.json()  # hidden and missing read the same
    assert api_for(owner).get(f"/api/v1/datasets/{dataset.pk}/").json()["name"] == "payroll-2024"


def test_the_dataset_becomes_visible_once_a_version_the_user_may_view_uses_it_without_naming_the_first_registrant(
    web_for, api_for, reviewer, owner, model, secret, stranger
):
    register_version(secret, stranger, datasets=[PAYROLL])
    register_version(model, owner, datasets=[PAYROLL])
    dataset = Dataset.objects.get()
    page = web_for(reviewer).get(f"/datasets/{dataset.pk}/").content.decode()
    assert "payroll-2024" in page and "with a version" in page and "stranger" not in page
    assert "secret" not in page and "Impact: versions trained or evaluated on it (1)" in page
    assert api_for(reviewer).get("/api/v1/datasets/?search=payroll").json()["results"][0]["versions_using"] == 1


def test_a_dataset_registered_on_its_own_is_seen_by_its_owner_and_team_only(web_for, api_for, owner, reviewer, outsider, stranger, team):
    mine = api_for(outsider).post("/api/v1/datasets/", {"name": "scratch", "uri": "s3://me/scratch"}, format="json").json()
    ours = api_for(owner).post("/api/v1/datasets/", {"name": "shared", "uri": "s3://team/shared", "team": "nlp-team"}, format="json").json()

    def names(user) -> set[str]:
        return {row["name"] for row in api_for(user).get("/api/v1/datasets/").json()["results"]}

    assert names(outsider) == {"scratch"} and names(owner) == names(reviewer) == {"shared"} and names(stranger) == set()
    assert web_for(reviewer).get(f"/datasets/{ours['id']}/").status_code == 200
    assert web_for(reviewer).get(f"/datasets/{mine['id']}/").status_code == 404
    assert web_for(stranger).get(f"/datasets/{ours['id']}/").status_code == 404


def test_impact_names_no_hidden_parent_and_says_via_a_version_you_cannot_view(web_for, api_for, owner, reviewer, model, secret, stranger):
    register_version(model, owner, datasets=[PAYROLL])                                  # sentiment v1: uses it
    register_version(secret, stranger, datasets=[PAYROLL])                              # secret-model v1: uses it, hidden
    register_version(secret, stranger, parents=[parent(secret, 1)])                     # secret-model v2: hidden
    register_version(secret, stranger, parents=[parent(secret, 2)])                     # secret-model v3: hidden
    register_version(model, owner, parents=[parent(secret, 3, "distilled_from")])      # sentiment v2: via three hidden
    register_version(model, owner, parents=[parent(model, 1), parent(secret, 1)])       # sentiment v3: one named, one hidden
    dataset = Dataset.objects.get()

    results = api_for(reviewer).get(f"/api/v1/datasets/{dataset.pk}/impact/").json()["results"]
    by_number = {row["version"]: row for row in results}
    assert set(by_number) == {1, 2, 3} and {row["model"] for row in results} == {"sentiment"}
    assert (by_number[2]["depth"], by_number[2]["roles"], by_number[2]["via"]) == (1, [], [HIDDEN])  # a hidden run is one level
    assert by_number[3]["via"] == [{"model": "sentiment", "version": 1, "relation": "fine_tuned_from", "hidden": False}, HIDDEN]

    page = web_for(reviewer).get(f"/datasets/{dataset.pk}/").content.decode()
    impact = page.split('id="impact"')[1]
    assert impact.count("via a version you cannot view") == 2 and "secret" not in page
    assert "fine-tuned from <a" in impact and ">derived<" not in impact

    owners = api_for(owner).get(f"/api/v1/datasets/{dataset.pk}/impact/").json()["results"]
    owners_v2 = next(row for row in owners if (row["model"], row["version"]) == ("sentiment", 2))
    assert owners_v2["via"] == [{"model": "secret-model", "version": 3, "relation": "distilled_from", "hidden": False}]


def test_a_versions_impact_marks_derivation_through_a_hidden_version_the_same_way(web_for, api_for, owner, reviewer, model, secret, stranger):
    register_version(model, owner)                                                      # sentiment v1
    register_version(secret, stranger, parents=[parent(model, 1)])                      # secret-model v1, hidden from the reviewer
    register_version(model, owner, parents=[parent(secret, 1, "ensembled_from")])      # sentiment v2
    [row] = api_for(reviewer).get("/api/v1/models/sentiment/versions/1/impact/").json()["results"]
    assert (row["model"], row["version"], row["depth"], row["via"]) == ("sentiment", 2, 2, [HIDDEN])
    page = web_for(reviewer).get("/models/sentiment/versions/1/lineage/").content.decode()
    assert "via a version you cannot view" in page.split('id="impact"')[1] and "secret" not in page


def test_the_datasets_page_query_count_is_constant_whatever_the_mix_of_visible_and_hidden_datasets(
    web_for, api_for, reviewer, owner, model, secret, stranger, team
):
    client = web_for(reviewer)
    register_version(model, owner, datasets=[{**PAYROLL, "uri": "s3://team/a"}])
    few, few_api = queries_for(client, "/datasets/"), _api_queries(api_for(reviewer), "/api/v1/datasets/")
    register_version(secret, stranger, datasets=[PAYROLL])
    for index in range(6):
        api_for(owner).post("/api/v1/datasets/", {"name": f"t{index}", "uri": f"s3://team/{index}", "team": "nlp-team"}, format="json")
        api_for(stranger).post("/api/v1/datasets/", {"name": f"s{index}", "uri": f"s3://stranger/{index}"}, format="json")
    model.refresh_from_db()
    trained_on(Dataset.objects.get(uri="s3://team/0"), bulk_versions(model, 5))
    assert queries_for(client, "/datasets/") == few and queries_for(client, "/datasets/?q=t") == few
    assert _api_queries(api_for(reviewer), "/api/v1/datasets/") == few_api


def test_the_dataset_page_query_count_is_constant_with_hidden_versions_in_the_path(web_for, reviewer, model, secret):
    client = web_for(reviewer)
    dataset = Dataset.objects.create(name="d", uri="s3://d")
    root = bulk_versions(model, 1)[0]
    trained_on(dataset, [root])
    few = queries_for(client, f"/datasets/{dataset.pk}/")
    hidden = chain(secret, 40, root=root)
    chain(model, 40, root=hidden[-1])
    assert queries_for(client, f"/datasets/{dataset.pk}/") == few
