from django.contrib import admin

from apps.models.permissions import Action, models_where
from apps.web.admin_mixins import ViewOnlyAdmin

from .models import Delivery, Event, Webhook


class ReadOnlyAdmin(ViewOnlyAdmin):
    """Events and deliveries are written by services only; managers change webhooks in the dashboard.

    Staff see only the rows of models they manage, as on the dashboard's webhook pages.
    """

    model_path = "model"

    def get_queryset(self, request):
        managed = models_where(request.user, Action.MANAGE)
        return super().get_queryset(request).filter(**{f"{self.model_path}__in": managed})


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "type", "model", "actor_name", "id"]
    list_filter = ["type"]
    list_select_related = ["model"]
    search_fields = ["id", "model__name"]


@admin.register(Webhook)
class WebhookAdmin(ReadOnlyAdmin):
    list_display = ["id", "model", "url", "active", "created_at"]
    list_filter = ["active"]
    list_select_related = ["model"]
    exclude = ["secret"]


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    model_path = "webhook__model"
    list_display = ["id", "event", "webhook", "status", "attempts", "last_status_code", "next_attempt_at"]
    list_filter = ["status"]
    list_select_related = ["event", "webhook"]
