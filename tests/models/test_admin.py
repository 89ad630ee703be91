"""The model admin's permission pages: only a model's managers grant, and granting goes through the audited service."""

import pytest

from apps.audit.models import AuditEntry
from apps.models.permissions import Action, can
from apps.models.services import model_permission_grant

pytestmark = pytest.mark.django_db


def test_staff_who_may_only_view_a_model_cannot_grant_themselves_permissions_in_the_admin(web_for, make_user, model, owner):
    staff = make_user("staffer", is_staff=True)
    model_permission_grant(model=model, actor=owner, action=Action.VIEW, user=staff)
    client = web_for(staff)
    url = f"/admin/models/registeredmodel/{model.pk}/permissions/user-manage/{staff.pk}/"
    assert client.get(url).status_code == 403
    client.post(url, {"permissions": ["manage_model", "approve_transition"]})
    assert not can(staff, Action.MANAGE, model)


def test_a_manager_granting_in_the_admin_goes_through_the_audited_service(web_for, make_user, model, owner):
    staff_owner = owner
    staff_owner.is_staff = True
    staff_owner.save()
    target = make_user("newcomer")
    url = f"/admin/models/registeredmodel/{model.pk}/permissions/user-manage/{target.pk}/"
    response = web_for(staff_owner).post(url, {"permissions": ["view_registeredmodel"]})
    assert response.status_code == 302
    assert can(target, Action.VIEW, model)
    assert AuditEntry.objects.filter(action="model.permission_granted", after__holder="user:newcomer").exists()
