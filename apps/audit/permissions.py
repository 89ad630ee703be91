"""Who may read the whole audit log: one definition, used by the pages, the API and the navigation."""

from django.core.exceptions import PermissionDenied

AUDITOR_PERMISSION = "audit.view_auditentry"


def is_auditor(user) -> bool:
    """Superusers, and active users holding the global permission `audit.view_auditentry` (directly or via a group)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return user.is_superuser or user.has_perm(AUDITOR_PERMISSION)


def require_auditor(user) -> None:
    if not is_auditor(user):
        raise PermissionDenied("Only auditors may read the whole audit log.")
