"""What the registry's read-only admin pages share."""

from django.contrib import admin


class ViewOnlyAdmin(admin.ModelAdmin):
    """Rows the admin may show but never add, change or delete: services write them (audit, events, versions, ...)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
