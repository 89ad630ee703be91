from django.contrib import admin

from .models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "scope", "expires_at", "limited_to_models", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["scope", "limited_to_models"]
    readonly_fields = [
        "user", "name", "prefix", "digest", "scope", "expires_at", "limited_to_models", "allowed_models",
        "created_at", "last_used_at", "revoked_at",
    ]

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser  # token digests are nobody else's business

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return False  # tokens are created on the 'API tokens' page or with `manage.py api_token`, which show the secret once
