from django.contrib import admin

from apps.models.permissions import Action, can, visible_models

from .models import Artifact, ModelVersion, StageTransition


class ArtifactInline(admin.TabularInline):
    model = Artifact
    fields = ["path", "size", "sha256", "content_type"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Read-only: versions are immutable and stages move only through the lifecycle service."""

    list_display = ["__str__", "stage", "flavor", "created_by", "created_at"]
    list_filter = ["stage", "flavor"]
    search_fields = ["model__name"]
    inlines = [ArtifactInline]
    exclude = ["tags"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(model__in=visible_models(request.user)).select_related("model", "created_by")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return obj is None or can(request.user, Action.VIEW, obj.model)


@admin.register(StageTransition)
class StageTransitionAdmin(admin.ModelAdmin):
    list_display = ["version", "from_stage", "to_stage", "actor", "created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(version__model__in=visible_models(request.user)).select_related("version__model", "actor")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
