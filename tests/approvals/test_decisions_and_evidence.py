"""A reviewer may change their vote while a request is pending; the review page compares what it should."""

import re

import pytest

from apps.approvals.models import Approval
from apps.approvals.services import approval_policy_update
from apps.audit.models import AuditEntry
from apps.models.permissions import Action
from apps.models.services import model_permission_grant
from tests.factories import promote, register_version
from tests.helpers import pending_production_request as _production_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_needed(model, owner):
    approval_policy_update(model=model, actor=owner, policies={"production": (2, None)})


def test_rejecting_after_approving_on_the_page_replaces_the_approval(web_for, two_needed, model, owner, reviewer):
    request = _production_request(model, owner)
    client = web_for(reviewer)
    client.post(f"/approvals/{request.pk}/approve/", {"comment": "fine at first sight"})
    response = client.post(f"/approvals/{request.pk}/reject/", {"comment": "wrong evaluation split"}, follow=True)
    assert response.status_code == 200 and "Rejected" in response.content.decode()
    request.refresh_from_db()
    assert request.status == "rejected"
    first, second = Approval.objects.filter(transition_request=request).order_by("id")
    assert (first.decision, first.invalidation, second.decision, second.invalidated_at) == ("approve", "replaced", "reject", None)
    change = AuditEntry.objects.get(action="request.decision_changed")
    assert change.before["decision"] == "approve" and change.after == {"decision": "reject", "comment": "wrong evaluation split"}
    assert "replaced by a later decision" in client.get(f"/approvals/{request.pk}/").content.decode()


def test_rejecting_after_approving_through_the_api_answers_200_not_500(api_for, two_needed, model, owner, reviewer):
    request = _production_request(model, owner)
    api = api_for(reviewer)
    assert api.post(f"/api/v1/transition-requests/{request.pk}/approve/", {"comment": "ok"}, format="json").status_code == 200
    again = api.post(f"/api/v1/transition-requests/{request.pk}/approve/", {"comment": "ok"}, format="json")
    assert again.status_code == 400 and "already approved" in again.json()["error"]["message"]
    rejected = api.post(f"/api/v1/transition-requests/{request.pk}/reject/", {"comment": "leakage found"}, format="json")
    assert rejected.status_code == 200
    body = rejected.json()
    assert body["status"] == "rejected"
    assert [(a["decision"], a["live"], a["invalidation"]) for a in body["approvals"]] == [("approve", False, "replaced"), ("reject", True, None)]


def test_a_replaced_approval_no_longer_counts_towards_the_policy(make_user, api_for, two_needed, model, owner, reviewer):
    second = make_user("second")
    for action in (Action.VIEW, Action.APPROVE_TRANSITION):
        model_permission_grant(model=model, actor=owner, action=action, user=second)
    request = _production_request(model, owner)
    api_for(reviewer).post(f"/api/v1/transition-requests/{request.pk}/approve/", format="json")
    api_for(reviewer).post(f"/api/v1/transition-requests/{request.pk}/reject/", {"comment": "no"}, format="json")
    late = api_for(second).post(f"/api/v1/transition-requests/{request.pk}/approve/", format="json")
    assert late.status_code == 400 and "already rejected" in late.json()["error"]["message"]


def test_right_after_an_approval_the_review_page_compares_with_the_version_it_replaced(web_for, model, owner, reviewer):
    promote(register_version(model, owner, metrics={"acc": 0.80}), requester=owner, approver=reviewer)
    request = _production_request(model, owner, metrics={"acc": 0.85})
    client = web_for(reviewer)
    page = client.post(f"/approvals/{request.pk}/approve/", {"comment": "ok"}, follow=True).content.decode()
    heading = page[page.index('id="comparison-heading"'):]
    heading = heading[: heading.index("</h2>")]
    assert "v1</a>, the production version it replaced" in heading and "nothing" not in heading
    assert "+0.05" in page
    assert 'id="quality-at-decision"' in page and "Judged against v1 when the move was applied" in page


def test_the_first_production_version_says_nothing_was_in_production_before(web_for, model, owner, reviewer):
    request = _production_request(model, owner)
    page = web_for(reviewer).post(f"/approvals/{request.pk}/approve/", follow=True).content.decode()
    assert "nothing was in production" in page


def test_the_review_page_diffs_hyperparameters_with_the_comparison_pages_rule(web_for, model, owner, reviewer):
    """`true` and `1` differ, `1` and `1.0` do not: the same equality as the compare page (apps.catalog.compare)."""
    params = {"flag": 1, "rate": 1, "name": "a"}
    promote(register_version(model, owner, hyperparameters=params), requester=owner, approver=reviewer)
    transition_request = _production_request(model, owner, hyperparameters={"flag": True, "rate": 1.0, "name": "a"})
    page = web_for(reviewer).get(f"/approvals/{transition_request.pk}/").content.decode()
    rows = {name: changed for changed, name in re.findall(r'<tr( class="changed")?><td>(flag|rate|name)</td>', page)}
    assert rows == {"flag": ' class="changed"', "rate": "", "name": ""}
