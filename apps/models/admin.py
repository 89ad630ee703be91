from django.contrib import admin
from guardian.admin import GuardedModelAdmin

from .models import RegisteredModel
from .permissions import Action, can, visible_models


@admin.register(RegisteredModel)
class RegisteredModelAdmin(GuardedModelAdmin):
    """Object permissions are edited here through guardian; every other change goes through the dashboard's services."""

    list_display = ["name", "team", "last_version_number", "created_at"]
    search_fields = ["name"]
    readonly_fields = ["name", "description", "team", "last_version_number", "created_by", "created_at", "updated_at"]
    exclude = ["tags"]

    def get_queryset(self, request):
        return visible_models(request.user)

    def has_add_permission(self, request):
        return False  # created through the dashboard or API so creators get their permissions

    def has_change_permission(self, request, obj=None):
        return obj is None or can(request.user, Action.MANAGE, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return obj is None or can(request.user, Action.VIEW, obj)
