"""The navigation bar's unread count, read in the query that loads the logged-in user (no query of its own)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce

from .models import Notification


class UnreadCountBackend(ModelBackend):
    """Django's ModelBackend, whose session user carries `unread_notifications` (a subquery on the partial index of
    unread rows), so every page shows the count without another query."""

    def get_user(self, user_id):
        unread = (
            Notification.objects.filter(recipient=OuterRef("pk"), read_at__isnull=True)
            .order_by().values("recipient").annotate(count=Count("pk")).values("count")
        )
        user_model = get_user_model()
        user = (
            user_model._default_manager.annotate(unread_notifications=Coalesce(Subquery(unread, output_field=IntegerField()), Value(0)))
            .filter(pk=user_id).first()
        )
        return user if user is not None and self.user_can_authenticate(user) else None
