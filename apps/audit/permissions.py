"""Who may read the whole audit log: one definition, used by the pages, the API and the navigation."""

from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef

AUDITOR_PERMISSION = "audit.view_auditentry"


def holds_auditor_permission():
    """An expression on users: whether the user holds `AUDITOR_PERMISSION` directly or through a group. The session
    user is loaded with it (apps.notifications.authentication), so the navigation's Audit link costs no query."""
    app_label, codename = AUDITOR_PERMISSION.split(".")
    permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename)
    return Exists(permission.filter(user=OuterRef("pk"))) | Exists(permission.filter(group__user=OuterRef("pk")))


def is_auditor(user) -> bool:
    """Superusers, and active users holding the global permission `audit.view_auditentry` (directly or via a group)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    held = getattr(user, "holds_auditor_permission", None)  # read with the session user
    return held if held is not None else user.has_perm(AUDITOR_PERMISSION)


def require_auditor(user) -> None:
    if not is_auditor(user):
        raise PermissionDenied("Only auditors may read the whole audit log.")
