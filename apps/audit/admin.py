from django.contrib import admin

from apps.web.admin_mixins import ViewOnlyAdmin

from .models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(ViewOnlyAdmin):
    """Read-only: entries are append-only and written only by `apps.audit.services.record`."""

    list_display = ["sequence", "created_at", "actor_name", "action", "object_repr", "request_id"]
    list_filter = ["action"]
    search_fields = ["actor_name", "object_repr", "action", "request_id"]
    list_select_related = ["object_type"]
    actions = None

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]
