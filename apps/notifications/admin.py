from django.contrib import admin

from apps.web.admin_mixins import ViewOnlyAdmin

from .models import Notification


@admin.register(Notification)
class NotificationAdmin(ViewOnlyAdmin):
    """Read-only, for superusers: where an email stands (sent, retried, given up) and why."""

    list_display = ("created_at", "recipient", "kind", "title", "read_at", "email_status", "email_attempts")
    list_filter = ("email_status", "kind")
    search_fields = ("title", "recipient__username", "email_error")
    list_select_related = ("recipient",)
    readonly_fields = [field.name for field in Notification._meta.fields]

    def has_module_permission(self, request):
        return request.user.is_superuser  # notifications are personal: only administrators look across users

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser
