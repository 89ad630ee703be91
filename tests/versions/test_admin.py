import pytest

from apps.versions.models import ModelVersion

pytestmark = pytest.mark.django_db


def test_the_admin_cannot_change_a_version_or_its_stage(web_for, make_user, model, version):
    admin = make_user("root", is_staff=True, is_superuser=True)
    client = web_for(admin)
    url = f"/admin/versions/modelversion/{version.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200 and 'name="stage"' not in page.content.decode()
    client.post(url, {"stage": "production", "description": "changed"})
    version.refresh_from_db()
    assert version.stage == "draft" and version.description == ""
    assert client.get("/admin/versions/modelversion/add/").status_code == 403


def test_staff_see_in_the_admin_only_models_they_may_view(web_for, make_user, model, version, outsider):
    from apps.models.services import model_create

    staff = make_user("staffer", is_staff=True)
    model_create(name="staff-own", actor=staff)
    listing = web_for(staff).get("/admin/models/registeredmodel/").content.decode()
    assert "staff-own" in listing and "sentiment" not in listing
    assert web_for(staff).get(f"/admin/models/registeredmodel/{model.pk}/change/").status_code in (302, 403, 404)
    assert ModelVersion.objects.count() == 1
