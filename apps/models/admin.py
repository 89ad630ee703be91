from django.contrib import admin
from django.http import Http404
from guardian.admin import GuardedModelAdmin

from .models import RegisteredModel
from .permissions import Action, can, models_where, require, visible_models
from .services import model_permission_grant, model_permission_revoke


def _audited_form(base, actor):
    """Guardian's object-permission form, saving through our services so grants are checked and audited."""

    class AuditedObjectPermissionsForm(base):
        def save_obj_perms(self) -> None:
            chosen = set(self.cleaned_data[self.get_obj_perms_field_name()]) & set(Action.values)
            current = set(self.get_obj_perms_field_initial()) & set(Action.values)
            holder = {"user": self.user} if hasattr(self, "user") else {"group": self.group}
            for codename in sorted(current - chosen):
                model_permission_revoke(model=self.obj, actor=actor, action=codename, **holder)
            for codename in sorted(chosen - current):
                model_permission_grant(model=self.obj, actor=actor, action=codename, **holder)

    return AuditedObjectPermissionsForm


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
        if obj is None:
            return models_where(request.user, Action.MANAGE).exists()
        return can(request.user, Action.MANAGE, obj)

    def _require_manage(self, request, object_pk) -> None:
        model = self.get_queryset(request).filter(pk=object_pk).first() if str(object_pk).isdigit() else None
        if model is None:
            raise Http404("No such model.")
        require(request.user, Action.MANAGE, model)

    def obj_perms_manage_view(self, request, object_pk):
        self._require_manage(request, object_pk)
        return super().obj_perms_manage_view(request, object_pk)

    def obj_perms_manage_user_view(self, request, object_pk, user_id):
        self._require_manage(request, object_pk)
        return super().obj_perms_manage_user_view(request, object_pk, user_id)

    def obj_perms_manage_group_view(self, request, object_pk, group_id):
        self._require_manage(request, object_pk)
        return super().obj_perms_manage_group_view(request, object_pk, group_id)

    def get_obj_perms_manage_user_form(self, request):
        return _audited_form(super().get_obj_perms_manage_user_form(request), request.user)

    def get_obj_perms_manage_group_form(self, request):
        return _audited_form(super().get_obj_perms_manage_group_form(request), request.user)

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return obj is None or can(request.user, Action.VIEW, obj)
