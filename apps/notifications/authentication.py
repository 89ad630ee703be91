"""The navigation bar's unread count and Audit link, read in the query that loads the logged-in user (no query of their own)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce

from apps.audit.permissions import holds_auditor_permission

from .models import Notification


class UnreadCountBackend(ModelBackend):
    """Django's ModelBackend, whose session user carries `unread_notifications` (a subquery on the partial index of
    unread rows) and `holds_auditor_permission` (apps.audit.permissions.is_auditor), so every page shows the count and
    the Audit link without another query."""

    def get_user(self, user_id):
        unread = (
            Notification.objects.filter(recipient=OuterRef("pk"), read_at__isnull=True)
            .order_by().values("recipient").annotate(count=Count("pk")).values("count")
        )
        user_model = get_user_model()
        user = (
            user_model._default_manager.annotate(
                unread_notifications=Coalesce(Subquery(unread, output_field=IntegerField()), Value(0)),
                holds_auditor_permission=holds_auditor_permission(),
            )
            .filter(pk=user_id).first()
        )
        return user if user is not None and self.user_can_authenticate(user) else None
