"""The JSON of models, datasets, transition requests and production pointer moves, pinned field by field (as
tests/versions/test_version_document.py pins the version JSON): rendering them through serializers must not change it."""

import re

import pytest
from django.contrib.auth.models import Group

from tests.factories import promote, register_version
from tests.helpers import pending_production_request

pytestmark = pytest.mark.django_db

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")


def _stamped(value):
    """Timestamps (checked for their format) replaced by a marker, so the rest compares exactly."""
    if isinstance(value, dict):
        return {key: _stamped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_stamped(item) for item in value]
    return "<timestamp>" if isinstance(value, str) and TIMESTAMP.match(value) else value


@pytest.fixture
def team(owner):
    nlp = Group.objects.create(name="nlp")
    owner.groups.add(nlp)
    return nlp


def test_the_model_json_is_pinned(api_for, owner, reviewer, model, team):
    api = api_for(owner)
    created = api.post("/api/v1/models/", {"name": "churn", "description": "d", "tags": ["b", "a"], "team": "nlp"}, format="json")
    assert created.status_code == 201
    assert _stamped(created.json()) == {
        "name": "churn", "description": "d", "team": "nlp", "tags": ["a", "b"], "latest_version": None, "production_version": None,
        "created_at": "<timestamp>",
    }
    promote(register_version(model, owner), requester=owner, approver=reviewer)
    register_version(model, owner)
    sentiment = {
        "name": "sentiment", "description": "A **model** card.", "team": None, "tags": [], "latest_version": 2, "production_version": 1,
        "created_at": "<timestamp>",
    }
    assert _stamped(api.get(f"/api/v1/models/{model.name}/").json()) == sentiment
    assert _stamped(api.get("/api/v1/models/").json()["results"]) == [
        {**sentiment, "name": "churn", "description": "d", "team": "nlp", "tags": ["a", "b"], "latest_version": None, "production_version": None},
        sentiment,
    ]


def test_the_dataset_json_is_pinned(api_for, owner, team):
    api = api_for(owner)
    body = {"name": "imdb", "uri": "s3://d/imdb", "digest": "v1", "size_bytes": 5, "description": "Reviews.", "team": "nlp"}
    created = api.post("/api/v1/datasets/", body, format="json")
    assert created.status_code == 201
    pk = created.json()["id"]
    expected = {
        "id": pk, "name": "imdb", "uri": "s3://d/imdb", "digest": "v1", "size_bytes": 5, "description": "Reviews.", "owner": "owner",
        "team": "nlp", "created_at": "<timestamp>", "url": f"http://testserver/api/v1/datasets/{pk}/",
    }
    assert _stamped(created.json()) == expected
    assert _stamped(api.get(f"/api/v1/datasets/{pk}/").json()) == expected
    assert _stamped(api.get("/api/v1/datasets/").json()["results"]) == [{**expected, "versions_using": 0}]
    bare = api.post("/api/v1/datasets/", {"name": "bare", "uri": "s3://d/bare"}, format="json").json()
    assert _stamped(bare) == {
        "id": bare["id"], "name": "bare", "uri": "s3://d/bare", "digest": "", "size_bytes": None, "description": "", "owner": "owner",
        "team": None, "created_at": "<timestamp>", "url": f"http://testserver/api/v1/datasets/{bare['id']}/",
    }


def test_the_transition_request_json_is_pinned_pending_and_applied(api_for, owner, reviewer, model):
    api = api_for(owner)
    promote(register_version(model, owner), requester=owner, approver=reviewer)
    pending = pending_production_request(model, owner)
    assert _stamped(api.get(f"/api/v1/transition-requests/{pending.pk}/").json()) == {
        "id": pending.pk, "model": "sentiment", "version": 2, "from_stage": "staging", "to_stage": "production", "alias": None, "status": "pending",
        "requested_by": "owner", "justification": "Ship: +2 points", "created_at": "<timestamp>", "decided_at": None,
        "required_approvals": 1, "approver_group": None, "stale": False, "override_reason": None, "override_baseline": None,
        "quality_gate": {
            "status": "passed", "baseline": 1, "baseline_pinned": False, "at_validation": {"status": "passed", "baseline": 1},
            "baseline_moved": False, "rules": [], "override_holds": False, "problems": [],
        },
        "approver_shortfall": None,
        "approvals": [],
    }
    approved = api_for(reviewer).post(f"/api/v1/transition-requests/{pending.pk}/approve/", {"comment": "ok"}, format="json")
    assert approved.status_code == 200
    assert _stamped(approved.json()) == {
        "id": pending.pk, "model": "sentiment", "version": 2, "from_stage": "staging", "to_stage": "production", "alias": None, "status": "applied",
        "requested_by": "owner", "justification": "Ship: +2 points", "created_at": "<timestamp>", "decided_at": "<timestamp>",
        "required_approvals": 1, "approver_group": None, "stale": False, "override_reason": None, "override_baseline": None,
        "quality_gate": {"decided": {"status": "passed", "baseline": 1, "overridden": False}},
        "approver_shortfall": None,
        "approvals": [
            {"approver": "reviewer", "decision": "approve", "comment": "ok", "created_at": "<timestamp>", "live": True, "invalidation": None},
        ],
    }


def test_the_production_pointer_change_json_is_pinned(api_for, owner, reviewer, model):
    api = api_for(owner)
    promote(register_version(model, owner), requester=owner, approver=reviewer)
    promote(register_version(model, owner), requester=owner, approver=reviewer, justification="Better")
    rolled = api.post(f"/api/v1/models/{model.name}/rollback/", {"reason": "v2 misbehaves"}, format="json")
    assert rolled.status_code == 201
    rollback = {"changed_at": "<timestamp>", "kind": "rollback", "version": 1, "previous_version": 2, "actor": "owner", "reason": "v2 misbehaves"}
    assert _stamped(rolled.json()) == rollback
    assert _stamped(api.get(f"/api/v1/models/{model.name}/history/production/").json()) == {
        "model": "sentiment",
        "history": [
            rollback,
            {"changed_at": "<timestamp>", "kind": "promotion", "version": 2, "previous_version": 1, "actor": "reviewer", "reason": "Better"},
            {"changed_at": "<timestamp>", "kind": "promotion", "version": 1, "previous_version": None, "actor": "reviewer", "reason": "Ready for users"},
        ],
        "next": None,
        "previous": None,
    }


def test_the_production_history_is_paged_by_cursor_to_its_first_change(api_for, owner, reviewer, model):
    for _ in range(3):
        promote(register_version(model, owner), requester=owner, approver=reviewer)
    api = api_for(owner)
    page = api.get(f"/api/v1/models/{model.name}/history/production/?page_size=2").json()
    seen = [change["version"] for change in page["history"]]
    assert seen == [3, 2] and page["previous"] is None
    last = api.get(page["next"]).json()
    assert [change["version"] for change in last["history"]] == [1] and last["next"] is None and last["previous"]
