"""The aliases API: the lookup with ETag/304 like the stage endpoint, set/move/delete, policy, history at T,
rollback, the transition request that moves a governed alias, and who may do what."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.models.permissions import Action
from apps.models.services import model_permission_grant
from apps.validation.services import validation_run
from tests.factories import register_version

pytestmark = pytest.mark.django_db


def test_the_alias_lookup_answers_304_until_the_alias_moves(api_for, owner, model):
    v1, _ = register_version(model, owner), register_version(model, owner)
    api = api_for(owner)
    url = f"/api/v1/models/{model.name}/aliases/champion/"
    assert api.get(url).status_code == 404
    assert api.put(url, {"version": 1, "comment": "first"}, format="json").json()["version"] == 1
    first = api.get(url)
    etag = first["ETag"]
    assert first.status_code == 200 and first.json()["number"] == 1 and first.json()["validation"]["status"] == "queued"
    with CaptureQueriesContext(connection) as ctx:
        assert api.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert len(ctx.captured_queries) <= 2  # the token and the fingerprint, as for the stage endpoint
    validation_run(job_id=v1.validation_jobs.get().pk)
    assert api.get(url, HTTP_IF_NONE_MATCH=etag)["ETag"] != etag  # the version's JSON changed
    moved = api.put(url, {"version": 2}, format="json").json()
    assert moved["version"] == 2 and moved["policy"] == {"builtin": False, "governed": False, "required_approvals": 0, "approver_group": None, "gates": False}
    assert api.get(url).json()["number"] == 2
    assert api.get(f"/api/v1/models/{model.name}/aliases/").json()["results"][0]["alias"] == "champion"
    assert api.delete(url).status_code == 204 and api.get(url).status_code == 404


def test_outsiders_get_404_and_viewers_may_read_but_not_set(api_for, owner, model, outsider, make_user):
    register_version(model, owner)
    viewer = make_user("viewer")
    model_permission_grant(model=model, actor=owner, action=Action.VIEW, user=viewer)
    api_for(owner).put(f"/api/v1/models/{model.name}/aliases/champion/", {"version": 1}, format="json")
    url = f"/api/v1/models/{model.name}/aliases/champion/"
    for path in ("", "policy/", "history/"):
        assert api_for(outsider).get(url + path).status_code == 404
    assert api_for(outsider).put(url, {"version": 1}, format="json").status_code == 404
    assert api_for(viewer).get(url).json()["number"] == 1
    refused = api_for(viewer).put(url, "not json at all", content_type="application/json")
    assert refused.status_code == 403  # permission judged before the body is read
    assert api_for(viewer).delete(url).status_code == 403
    assert api_for(viewer).put(url + "policy/", {"required_approvals": 1}, format="json").status_code == 403
    assert api_for(viewer).post(url + "rollback/", "{not json", content_type="application/json").status_code == 403
    assert api_for(outsider).post(url + "rollback/", {"reason": "bad"}, format="json").status_code == 404


def test_a_governed_alias_answers_409_naming_the_request_then_moves_at_the_decisive_approval(api_for, owner, reviewer, model):
    register_version(model, owner)
    owner_api, reviewer_api = api_for(owner), api_for(reviewer)
    unknown = owner_api.put(f"/api/v1/models/{model.name}/aliases/champion/policy/", {"required_approvals": 1, "approver_group": "nobody"}, format="json")
    assert unknown.status_code == 400 and "No group is named 'nobody'" in unknown.json()["error"]["message"]
    policy = owner_api.put(f"/api/v1/models/{model.name}/aliases/champion/policy/", {"required_approvals": 1}, format="json")
    assert policy.json()["governed"] is True
    refused = owner_api.put(f"/api/v1/models/{model.name}/aliases/champion/", {"version": 1}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "approval_required"
    assert f"POST /api/v1/models/{model.name}/versions/1/transitions/" in refused.json()["error"]["message"]
    created = owner_api.post(f"/api/v1/models/{model.name}/versions/1/transitions/", {"alias": "champion", "comment": "best"}, format="json").json()
    assert created["status"] == "pending" and created["alias"] == "champion" and created["to_stage"] == "" and created["required_approvals"] == 1
    assert owner_api.post(f"/api/v1/transition-requests/{created['id']}/approve/", {}, format="json").status_code == 403  # not one's own
    approved = reviewer_api.post(f"/api/v1/transition-requests/{created['id']}/approve/", {}, format="json").json()
    assert approved["status"] == "applied"
    assert reviewer_api.get(f"/api/v1/models/{model.name}/aliases/champion/").json()["number"] == 1


def test_history_at_an_instant_and_rollback(api_for, owner, reviewer, model):
    register_version(model, owner), register_version(model, owner)
    api = api_for(owner)
    url = f"/api/v1/models/{model.name}/aliases/canary/"
    api.put(url, {"version": 1}, format="json")
    api.put(url, {"version": 2}, format="json")
    history = api.get(url + "history/").json()["history"]
    assert [(h["version"], h["previous_version"]) for h in history] == [(2, 1), (1, None)]
    at = api.get(url + "history/", {"at": history[1]["changed_at"]}).json()
    assert at == {"alias": "canary", "at": history[1]["changed_at"], "version": 1}
    assert api.get(url + "history/", {"at": "yesterday"}).status_code == 400
    rolled = api_for(reviewer).post(url + "rollback/", {"reason": "v2 misbehaves"}, format="json")
    assert rolled.status_code == 201 and rolled.json()["version"] == 1 and rolled.json()["kind"] == "rollback"


def test_the_production_alias_reads_and_governs_like_the_production_stage(api_for, owner, model):
    register_version(model, owner)
    api = api_for(owner)
    assert api.get(f"/api/v1/models/{model.name}/aliases/production/").status_code == 404
    policy = api.get(f"/api/v1/models/{model.name}/aliases/production/policy/").json()
    assert policy == {"builtin": True, "governed": True, "required_approvals": 1, "approver_group": None, "gates": True}
    refused = api.put(f"/api/v1/models/{model.name}/aliases/production/policy/", {"required_approvals": 1, "gates": False}, format="json")
    assert refused.status_code == 400 and "gates always apply" in refused.json()["error"]["message"]
    assert api.get(f"/api/v1/models/{model.name}/aliases/staging/").status_code == 404  # a stage name is no alias


def test_a_deployment_follows_an_alias(api_for, owner, model):
    register_version(model, owner)
    response = api_for(owner).put(f"/api/v1/models/{model.name}/deployments/canary-eu/", {"version": 1, "follows": "canary"}, format="json")
    assert response.json()["follows"] == "canary"
    bad = api_for(owner).put(f"/api/v1/models/{model.name}/deployments/canary-eu/", {"version": 1, "follows": "staging"}, format="json")
    assert bad.status_code == 400


def test_the_list_is_paged_searchable_sortable_and_its_query_count_does_not_grow(api_for, owner, model):
    from apps.approvals.services import alias_policy_update, alias_set

    versions = [register_version(model, owner) for _ in range(2)]
    api = api_for(owner)
    url = f"/api/v1/models/{model.name}/aliases/"
    alias_set(model=model, alias="a0", version=versions[0], actor=owner)
    api.get(url)  # the token's first use is stamped once

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert api.get(url).status_code == 200
        return len(ctx.captured_queries)

    few = count()
    for index in range(1, 6):
        alias_set(model=model, alias=f"a{index}", version=versions[index % 2], actor=owner)
        alias_policy_update(model=model, alias=f"a{index}", actor=owner, required_approvals=index % 2)
    assert count() == few
    assert [a["alias"] for a in api.get(url, {"ordering": "-name", "page_size": 2}).json()["results"]] == ["a5", "a4"]
    assert [a["alias"] for a in api.get(url, {"search": "3"}).json()["results"]] == ["a3"]
    assert api.get(url, {"sort": "name"}).status_code == 400  # an unknown parameter is named, not ignored


def test_deleting_production_is_taking_it_down_under_production_rules(api_for, owner, reviewer, model, make_user):
    from tests.factories import promote, validated_version

    promote(validated_version(model, owner), requester=owner, approver=reviewer)
    requester = make_user("requester")
    for action in (Action.VIEW, Action.REQUEST_TRANSITION):
        model_permission_grant(model=model, actor=owner, action=action, user=requester)
    url = f"/api/v1/models/{model.name}/aliases/production/"
    refused = api_for(requester).delete(url)
    assert refused.status_code == 409 and "out of production needs 1 approval(s)" in refused.json()["error"]["message"]
    assert api_for(owner).delete(url, {"comment": "incident"}, format="json").status_code == 204  # a manager, at once
    assert api_for(owner).get(url).status_code == 404 and model.versions.get().stage == "archived"


def test_the_history_comes_a_page_at_a_time_with_next_links(api_for, owner, model):
    register_version(model, owner), register_version(model, owner)
    api = api_for(owner)
    url = f"/api/v1/models/{model.name}/aliases/canary/"
    for number in (1, 2, 1):
        api.put(url, {"version": number}, format="json")
    first = api.get(url + "history/", {"page_size": 2}).json()
    assert [(h["version"], h["previous_version"]) for h in first["history"]] == [(1, 2), (2, 1)] and first["previous"] is None
    second = api.get(first["next"]).json()
    assert [(h["version"], h["previous_version"]) for h in second["history"]] == [(1, None)] and second["next"] is None
    assert api.get(second["previous"]).json()["history"] == first["history"]
    bad = api.get(url + "history/", {"cursor": "nonsense"})
    assert bad.status_code == 400 and "cursor" in bad.json()["error"]["fields"]
