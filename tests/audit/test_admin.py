import pytest

from apps.audit.models import AuditEntry

pytestmark = pytest.mark.django_db


def test_the_admin_lists_entries_but_cannot_add_change_or_delete_them(web_for, superuser, model):
    client = web_for(superuser)
    entry = AuditEntry.objects.order_by("sequence").first()
    listing = client.get("/admin/audit/auditentry/")
    assert listing.status_code == 200 and "model.created" in listing.content.decode()
    assert 'name="action"' not in listing.content.decode()  # no bulk "delete selected"
    assert client.get("/admin/audit/auditentry/add/").status_code == 403
    detail = client.get(f"/admin/audit/auditentry/{entry.pk}/change/")
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()
    client.post(f"/admin/audit/auditentry/{entry.pk}/change/", {"action": "forged"})
    assert client.get(f"/admin/audit/auditentry/{entry.pk}/delete/").status_code == 403
    entry.refresh_from_db()
    assert entry.action == "model.created"
    assert AuditEntry.objects.count() == 3
