import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404

from apps.audit.models import AuditEntry
from apps.models.models import RegisteredModel
from apps.models.permissions import Action, actions_for, can, visible_models
from apps.models.services import model_create, model_permission_grant, model_permission_revoke, model_update

pytestmark = pytest.mark.django_db


def test_the_creator_gets_every_permission_and_an_audit_record(owner):
    model = model_create(name="churn", actor=owner)
    assert actions_for(owner, model) == set(Action.values)
    entry = AuditEntry.objects.get(action="model.created")
    assert entry.actor == owner and entry.after["name"] == "churn"


@pytest.mark.parametrize(
    "name",
    ["../etc", "a/b", "a%2fb", "..", ".hidden", "a b", "a\\b", "a\x00b", "a#b", "a?b", "", "-lead", "x" * 129, "new", "ｆｕｌｌwidth", "é"],
)
def test_it_refuses_names_that_are_not_url_safe(owner, name):
    with pytest.raises(ValidationError):
        model_create(name=name, actor=owner)
    assert not RegisteredModel.objects.exists()


def test_two_spellings_cannot_make_two_models(owner):
    model_create(name="Churn", actor=owner)
    with pytest.raises(ValidationError, match="already exists"):
        model_create(name="churn", actor=owner)
    with pytest.raises(ValidationError, match="already exists"):
        model_create(name=" Churn ", actor=owner)
    assert RegisteredModel.objects.count() == 1


def test_team_members_may_view_register_and_request_but_not_approve(owner, make_user):
    from django.contrib.auth.models import Group

    team = Group.objects.create(name="nlp")
    member = make_user("member")
    member.groups.add(team)
    model = model_create(name="ner", actor=owner, team=team)
    assert actions_for(member, model) == {Action.VIEW, Action.REGISTER, Action.REQUEST_TRANSITION}
    assert list(visible_models(member)) == [model]


def test_only_managers_grant_and_revoke(model, owner, reviewer, outsider):
    with pytest.raises(PermissionDenied):
        model_permission_grant(model=model, actor=reviewer, action=Action.MANAGE, user=reviewer)
    with pytest.raises(Http404):
        model_permission_grant(model=model, actor=outsider, action=Action.VIEW, user=outsider)
    model_permission_grant(model=model, actor=owner, action=Action.REGISTER, user=reviewer)
    assert can(reviewer, Action.REGISTER, model)
    model_permission_revoke(model=model, actor=owner, action=Action.REGISTER, user=reviewer)
    assert not can(reviewer, Action.REGISTER, model)
    assert AuditEntry.objects.filter(action__in=["model.permission_granted", "model.permission_revoked"]).count() >= 2


def test_a_manager_cannot_lock_themselves_out(model, owner):
    with pytest.raises(ValidationError, match="own manage permission"):
        model_permission_revoke(model=model, actor=owner, action=Action.MANAGE, user=owner)


def test_model_update_needs_manage_and_keeps_before_and_after(model, owner, reviewer):
    with pytest.raises(PermissionDenied):
        model_update(model=model, actor=reviewer, description="x", team=None, tags=[])
    model_update(model=model, actor=owner, description="new card", team=None, tags=["b", "a"])
    entry = AuditEntry.objects.get(action="model.updated")
    assert entry.before["description"] == "A **model** card." and entry.after["tags"] == ["a", "b"]


def test_outsiders_see_nothing_and_superusers_see_everything(model, outsider, make_user):
    assert not visible_models(outsider).exists()
    admin = make_user("root", is_superuser=True)
    assert list(visible_models(admin)) == [model]
