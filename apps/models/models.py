from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models.functions import Lower
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase
from taggit.managers import TaggableManager
from taggit.models import TaggedItemBase

from .names import validate_model_name


class RegisteredModelQuerySet(models.QuerySet):
    def search(self, text: str):
        if not text:
            return self
        return self.filter(models.Q(name__icontains=text) | models.Q(description__icontains=text))


class RegisteredModel(models.Model):
    name = models.CharField(max_length=128, unique=True, validators=[validate_model_name])
    description = models.TextField(blank=True, help_text="Model card in Markdown. Raw HTML is shown as text.")
    team = models.ForeignKey(Group, null=True, blank=True, on_delete=models.SET_NULL, related_name="registered_models")
    tags = TaggableManager(blank=True, through="ModelTag")
    last_version_number = models.PositiveIntegerField(
        default=0, help_text="Counter behind version numbers; bumped under a row lock so numbers never repeat or skip."
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RegisteredModelQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(Lower("name"), name="registered_model_name_ci_unique")]
        permissions = [
            ("register_version", "Register new versions"),
            ("request_transition", "Request stage transitions"),
            ("approve_transition", "Approve stage transitions"),
            ("manage_model", "Manage the model, its policies and permissions"),
        ]

    def __str__(self) -> str:
        return self.name


class ModelTag(TaggedItemBase):
    content_object = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE)


class RegisteredModelUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE)


class RegisteredModelGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE)
