from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.template.response import TemplateResponse

from .lifecycle import Stage
from apps.approvals.models import RequestStatus
from apps.approvals.services import transition_request_create
from apps.models.permissions import Action, can, visible_models
from apps.web.admin_mixins import ViewOnlyAdmin

from .models import Artifact, ModelVersion, StageTransition


class ArtifactInline(admin.TabularInline):
    model = Artifact
    fields = ["path", "size", "sha256", "content_type"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class StageChangeForm(forms.Form):
    to_stage = forms.ChoiceField(choices=Stage.choices, label="Move to")
    justification = forms.CharField(max_length=5000, widget=forms.Textarea(attrs={"rows": 3}), help_text="Reviewers read this first.")


@admin.action(description="Request a stage change for the selected versions")
def request_stage_change(modeladmin, request, queryset):
    """The admin's only way to move a stage: the same request service as the version page and the API, so the same
    approvals, gates and audit apply (a move that needs review becomes a pending request)."""
    form = StageChangeForm(request.POST if "apply" in request.POST else None)
    if not form.is_valid():
        context = {**modeladmin.admin_site.each_context(request), "title": "Request a stage change", "form": form, "versions": queryset,
                   "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME, "opts": modeladmin.model._meta}
        return TemplateResponse(request, "admin/versions/modelversion/stage_change.html", context)
    for version in queryset.select_related("model"):
        try:
            created = transition_request_create(version=version, actor=request.user, **form.cleaned_data)
        except (ValidationError, PermissionDenied) as exc:
            text = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            modeladmin.message_user(request, f"{version}: {text}", messages.ERROR)
        else:
            done = "moved" if created.status == RequestStatus.APPLIED else f"waits for approval (request #{created.pk})"
            modeladmin.message_user(request, f"{version}: {done} to {created.to_stage}.", messages.SUCCESS)
    return None


@admin.register(ModelVersion)
class ModelVersionAdmin(ViewOnlyAdmin):
    """Read-only: versions are immutable and stages move only through the lifecycle service (the action below)."""

    actions = [request_stage_change]
    list_display = ["__str__", "stage", "flavor", "created_by", "created_at"]
    list_filter = ["stage", "flavor"]
    search_fields = ["model__name"]
    inlines = [ArtifactInline]
    exclude = ["tags"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(model__in=visible_models(request.user)).select_related("model", "created_by")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_view_permission(self, request, obj=None):
        return obj is None or can(request.user, Action.VIEW, obj.model)


@admin.register(StageTransition)
class StageTransitionAdmin(ViewOnlyAdmin):
    list_display = ["version", "from_stage", "to_stage", "actor", "created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(version__model__in=visible_models(request.user)).select_related("version__model", "actor")
