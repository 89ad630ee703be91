"""Taking a version out of production is a production change: reviewed under production's approval policy, or done
by a manager of the model (audited). Page, API and admin behave the same, since all call the one request service."""

import pytest
from django.core.exceptions import ValidationError

from apps.versions.lifecycle import Stage
from apps.approvals.models import TransitionRequest
from apps.approvals.services import version_transition
from apps.audit.models import AuditEntry
from apps.models.permissions import Action
from apps.models.services import model_permission_grant
from apps.versions.models import ModelVersion
from tests.factories import promote, register_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def scientist(make_user, model, owner):
    """May view, register and request transitions; nothing more."""
    user = make_user("scientist", is_staff=True)
    for action in (Action.VIEW, Action.REGISTER, Action.REQUEST_TRANSITION):
        model_permission_grant(model=model, actor=owner, action=action, user=user)
    return user


@pytest.fixture
def live(model, owner, reviewer):
    version = register_version(model, owner)
    promote(version, requester=owner, approver=reviewer)
    return version


def _production_number(api, model) -> int | None:
    response = api.get(f"/api/v1/models/{model.name}/stages/production/")
    return response.json()["number"] if response.status_code == 200 else None


def _admin_archive(client, version, justification="Retire it"):
    return client.post(
        "/admin/versions/modelversion/",
        {"action": "request_stage_change", "_selected_action": [version.pk], "apply": "1", "to_stage": "archived", "justification": justification},
        follow=True,
    )


def test_a_requester_archiving_production_on_the_page_only_opens_a_request(web_for, api_for, scientist, model, live):
    response = web_for(scientist).post(f"/models/{model.name}/versions/{live.number}/transition/", {"to_stage": "archived", "justification": "old"})
    request = TransitionRequest.objects.get(to_stage="archived")
    assert response.status_code == 302 and response["Location"] == f"/approvals/{request.pk}/"
    assert request.status == "pending" and request.from_stage == "production"
    assert _production_number(api_for(scientist), model) == live.number


def test_a_requester_archiving_production_through_the_api_only_opens_a_request(api_for, scientist, model, live):
    api = api_for(scientist)
    created = api.post(f"/api/v1/models/{model.name}/versions/{live.number}/transitions/", {"to_stage": "archived", "comment": "old"}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert (body["status"], body["from_stage"], body["required_approvals"]) == ("pending", "production", 1)
    assert _production_number(api, model) == live.number


def test_a_requester_archiving_production_in_the_admin_only_opens_a_request(web_for, api_for, scientist, model, live):
    response = _admin_archive(web_for(scientist), live)
    assert "waits for approval" in response.content.decode()
    assert TransitionRequest.objects.get(to_stage="archived").status == "pending"
    assert _production_number(api_for(scientist), model) == live.number


def test_the_admin_asks_where_to_and_why_before_requesting(web_for, scientist, live):
    page = web_for(scientist).post("/admin/versions/modelversion/", {"action": "request_stage_change", "_selected_action": [live.pk]})
    assert page.status_code == 200 and 'name="justification"' in page.content.decode()
    assert not TransitionRequest.objects.filter(to_stage="archived").exists()


def test_calling_the_transition_directly_without_review_is_refused(scientist, live):
    with pytest.raises(ValidationError, match="out of production needs 1 approval"):
        version_transition(version=live, to_stage=Stage.ARCHIVED, actor=scientist, reason="quietly")
    live.refresh_from_db()
    assert live.stage == "production"


def test_an_approver_approves_the_retirement_and_it_is_audited(web_for, api_for, scientist, reviewer, model, live):
    api_for(scientist).post(f"/api/v1/models/{model.name}/versions/{live.number}/transitions/", {"to_stage": "archived", "comment": "old"}, format="json")
    request = TransitionRequest.objects.get(to_stage="archived")
    assert f"/approvals/{request.pk}/" in web_for(reviewer).get("/approvals/").content.decode()
    web_for(reviewer).post(f"/approvals/{request.pk}/approve/", {"comment": "agreed"})
    request.refresh_from_db()
    assert request.status == "applied" and _production_number(api_for(reviewer), model) is None
    assert AuditEntry.objects.get(action="production.taken_down").after["authority"] == f"request #{request.pk}"


@pytest.mark.parametrize("entry_point", ["page", "api", "admin"])
def test_a_manager_takes_production_down_at_once_and_it_is_audited(web_for, api_for, owner, model, live, entry_point):
    owner.is_staff = True
    owner.save()
    if entry_point == "page":
        web_for(owner).post(f"/models/{model.name}/versions/{live.number}/transition/", {"to_stage": "archived", "justification": "incident 42"})
    elif entry_point == "api":
        body = api_for(owner).post(f"/api/v1/models/{model.name}/versions/{live.number}/transitions/", {"to_stage": "archived", "comment": "incident 42"}, format="json").json()
        assert body["status"] == "applied"
    else:
        assert "moved to archived" in _admin_archive(web_for(owner), live, "incident 42").content.decode()
    assert ModelVersion.objects.get(pk=live.pk).stage == "archived"
    entry = AuditEntry.objects.get(action="production.taken_down")
    assert entry.actor_id == owner.pk and entry.before == {"version": live.number}
    assert entry.after == {"version": None, "reason": "incident 42", "authority": "manage"}


def test_an_approver_group_on_the_production_policy_governs_retirement_too(web_for, scientist, reviewer, make_user, model, owner, live):
    from django.contrib.auth.models import Group

    from apps.approvals.services import approval_policy_update

    leads = Group.objects.create(name="leads")
    approval_policy_update(model=model, actor=owner, policies={"production": (1, leads)})
    web_for(scientist).post(f"/models/{model.name}/versions/{live.number}/transition/", {"to_stage": "archived", "justification": "old"})
    request = TransitionRequest.objects.get(to_stage="archived")
    response = web_for(reviewer).post(f"/approvals/{request.pk}/approve/", {"comment": "ok"})
    assert response.status_code == 403
    assert ModelVersion.objects.get(pk=live.pk).stage == "production"


def test_the_default_move_on_a_staging_version_is_a_promotion_not_a_demotion(web_for, owner, model):
    version = register_version(model, owner)
    web_for(owner).post(f"/models/{model.name}/versions/{version.number}/transition/", {"to_stage": "staging", "justification": "try"})
    page = web_for(owner).get(f"/models/{model.name}/versions/{version.number}/").content.decode()
    select = page[page.index('name="to_stage"'):]
    select = select[: select.index("</select>")]
    assert '<option value="production" selected>' in select
    assert select.index('value="production"') < select.index('value="draft"') < select.index('value="archived"')
