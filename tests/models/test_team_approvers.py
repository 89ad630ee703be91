"""Teams have approvers: a team's leads group gets view and approve on every model created in (or moved to) the team,
and a pending request nobody but its requester may approve says so, with who can fix it, on every surface."""

import re

import pytest
from django.contrib.auth.models import Group

from apps.accounts.teams import team_leads_ensure
from apps.approvals.models import TransitionRequest
from apps.audit.models import AuditEntry
from apps.models.models import RegisteredModel
from apps.models.permissions import Action, can
from apps.validation.services import validation_run
from apps.versions.models import ModelVersion
from tests.factories import register_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(make_user):
    vision = Group.objects.create(name="vision")
    scientist, lead = make_user("scientist"), make_user("lead")
    scientist.groups.add(vision)
    lead.groups.add(vision, team_leads_ensure(team=vision))  # an administrator names the team's lead
    return vision


def _create_in_team(client, team, name="detector"):
    response = client.post("/models/new/", {"name": name, "description": "", "team": team.pk, "tags": ""})
    assert response.status_code == 302
    return RegisteredModel.objects.get(name=name)


def _request_production(client, model, number: int) -> TransitionRequest:
    version_page = f"/models/{model.name}/versions/{number}/transition/"
    client.post(version_page, {"to_stage": "staging", "justification": "shadow traffic next"})
    response = client.post(version_page, {"to_stage": "production", "justification": "mAP +3 on the holdout"})
    pk = int(re.search(r"/approvals/(\d+)/", response["Location"]).group(1))
    return TransitionRequest.objects.get(pk=pk)


def test_a_scientist_creates_a_model_in_the_team_and_its_lead_approves_from_the_inbox(client, team, make_user):
    scientist, lead = team.user_set.get(username="scientist"), team.user_set.get(username="lead")
    client.force_login(scientist)
    model = _create_in_team(client, team)
    version = register_version(model, scientist, metrics={"map": 0.61})
    validation_run(job_id=version.validation_jobs.get().pk)
    request = _request_production(client, model, version.number)
    review = client.get(f"/approvals/{request.pk}/").content.decode()
    assert 'id="approver-shortfall"' not in review

    client.force_login(lead)
    inbox = client.get("/approvals/").content.decode()
    assert f"/approvals/{request.pk}/" in inbox
    client.post(f"/approvals/{request.pk}/approve/", {"comment": "Holdout numbers check out"})
    assert ModelVersion.objects.get(model=model, stage="production") == version
    assert AuditEntry.objects.filter(action="model.permission_granted", after__holder="group:vision leads").count() == 2


def test_with_no_lead_the_request_page_the_api_and_the_model_page_say_nobody_can_approve_and_who_can_fix_it(
    client, api_for, make_user
):
    solo = Group.objects.create(name="solo")
    scientist = make_user("alone")
    scientist.groups.add(solo)
    make_user("root", is_superuser=True)
    client.force_login(scientist)
    model = _create_in_team(client, solo, "lonely")
    version = register_version(model, scientist)
    validation_run(job_id=version.validation_jobs.get().pk)
    client.post(f"/models/{model.name}/versions/1/transition/", {"to_stage": "staging", "justification": "x"})
    response = client.post(f"/models/{model.name}/versions/1/transition/", {"to_stage": "production", "justification": "ship"}, follow=True)
    page = response.content.decode()
    assert "Approvers see it in their inbox" not in page and "Nobody else may approve it yet" in page
    assert 'id="approver-shortfall"' in page and "Nobody but the requester (alone) may approve this request." in page
    assert "Managers of &#x27;lonely&#x27; (alone)" in page and "administrators (root)" in page and "solo leads" in page

    request = TransitionRequest.objects.get(to_stage="production")
    shortfall = api_for(scientist).get(f"/api/v1/transition-requests/{request.pk}/").json()["approver_shortfall"]
    assert shortfall["managers"] == ["alone"] and shortfall["administrators"] == ["root"] and shortfall["leads_group"] == "solo leads"
    model_page = client.get(f"/models/{model.name}/").content.decode()
    assert 'id="approver-shortfalls"' in model_page and f"Request #{request.pk}" in model_page

    make_user("newlead").groups.add(Group.objects.get(name="solo leads"))
    assert api_for(scientist).get(f"/api/v1/transition-requests/{request.pk}/").json()["approver_shortfall"] is None
    assert 'id="approver-shortfalls"' not in client.get(f"/models/{model.name}/").content.decode()


def test_a_policy_needing_more_approvers_than_exist_is_reported(api_for, owner, reviewer, model):
    from apps.approvals.services import approval_policy_update, transition_request_create

    approval_policy_update(model=model, actor=owner, policies={"production": (2, None)})
    version = register_version(model, owner)
    validation_run(job_id=version.validation_jobs.get().pk)
    transition_request_create(version=version, to_stage="staging", actor=owner, justification="ready")
    request = transition_request_create(version=version, to_stage="production", actor=owner, justification="ship")
    body = api_for(owner).get(f"/api/v1/transition-requests/{request.pk}/").json()
    assert "needs 2 more approval(s), but only 1 other person(s) may give one (reviewer)" in body["approver_shortfall"]["message"]


def test_moving_a_model_to_another_team_moves_the_team_and_lead_rights(web_for, team, make_user):
    scientist, lead = team.user_set.get(username="scientist"), team.user_set.get(username="lead")
    other = Group.objects.create(name="nlp")
    other_lead = make_user("nlp-lead")
    other_lead.groups.add(team_leads_ensure(team=other))
    scientist.groups.add(other)
    client = web_for(scientist)
    model = _create_in_team(client, team)
    assert can(lead, Action.APPROVE_TRANSITION, model) and not can(other_lead, Action.VIEW, model)
    response = client.post(f"/models/{model.name}/edit/", {"description": "moved", "team": other.pk, "tags": ""})
    assert response.status_code == 302
    assert not can(lead, Action.VIEW, model) and can(other_lead, Action.APPROVE_TRANSITION, model)
    assert AuditEntry.objects.filter(action="model.permission_revoked", before__holder="group:vision leads").count() == 2


def test_the_model_page_reads_approvers_once_however_many_requests_lack_one(web_for, make_user):
    from apps.approvals.services import transition_request_create
    from apps.models.services import model_create
    from tests.helpers import queries_for

    alone = make_user("alone")
    model = model_create(name="lonely", actor=alone)

    def request_production():
        version = register_version(model, alone)
        validation_run(job_id=version.validation_jobs.get().pk)
        transition_request_create(version=version, to_stage="staging", actor=alone, justification="ready")
        transition_request_create(version=version, to_stage="production", actor=alone, justification="ship")

    client = web_for(alone)
    request_production()
    few = queries_for(client, f"/models/{model.name}/")
    for _ in range(4):
        request_production()
    page = client.get(f"/models/{model.name}/").content.decode()
    assert page.count("Nobody but the requester (alone)") == 5
    assert queries_for(client, f"/models/{model.name}/") == few
