from django.conf import settings
from django.db import models
from django.db.models import F, Q


class Dataset(models.Model):
    """A dataset as a record. Its URI is a label: the registry never fetches it.

    A user sees a dataset through the versions they may view that use it, or, when it was registered on its own,
    as its owner or a member of its team (see `selectors.visible_datasets`). A dataset first registered with a
    version has no owner: it is exactly as visible as the versions using it.
    """

    name = models.CharField(max_length=200)
    uri = models.CharField(max_length=1000)
    digest = models.CharField(max_length=200, blank=True, help_text="Version, content digest or snapshot id.")
    size_bytes = models.BigIntegerField(null=True, blank=True, help_text="Size in bytes, as reported by whoever registered it.")
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_datasets",
        help_text="Who registered it on its own (empty when it was first registered with a version).",
    )
    team = models.ForeignKey(
        "auth.Group", null=True, blank=True, on_delete=models.SET_NULL, related_name="datasets",
        help_text="A team whose members may see it, when it was registered on its own.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "uri"]
        constraints = [
            models.UniqueConstraint(fields=["uri", "digest"], name="dataset_unique_uri_digest"),
            models.CheckConstraint(condition=Q(size_bytes__isnull=True) | Q(size_bytes__gte=0), name="dataset_size_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.name}@{self.digest}" if self.digest else self.name


class DatasetRole(models.TextChoices):
    TRAINING = "training", "Training"
    EVALUATION = "evaluation", "Evaluation"


class VersionDataset(models.Model):
    version = models.ForeignKey("versions.ModelVersion", on_delete=models.CASCADE, related_name="dataset_links")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="version_links")
    role = models.CharField(max_length=16, choices=DatasetRole.choices)

    class Meta:
        ordering = ["role", "dataset__name"]
        constraints = [
            models.UniqueConstraint(fields=["version", "dataset", "role"], name="version_dataset_role_unique")
        ]

    def __str__(self) -> str:
        return f"{self.version} {self.role} {self.dataset}"


class ParentRelation(models.TextChoices):
    FINE_TUNED_FROM = "fine_tuned_from", "Fine-tuned from"
    DISTILLED_FROM = "distilled_from", "Distilled from"
    ENSEMBLED_FROM = "ensembled_from", "Ensembled from"


class VersionParent(models.Model):
    """`child` was derived from `parent`. Parents must exist before the child is registered, so the graph has no cycles."""

    child = models.ForeignKey("versions.ModelVersion", on_delete=models.CASCADE, related_name="parent_links")
    parent = models.ForeignKey("versions.ModelVersion", on_delete=models.PROTECT, related_name="child_links")
    relation = models.CharField(max_length=16, choices=ParentRelation.choices)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["child", "parent"], name="version_parent_unique"),
            models.CheckConstraint(condition=~Q(child=F("parent")), name="version_parent_not_self"),
        ]

    def __str__(self) -> str:
        return f"{self.child} {self.relation} {self.parent}"


class TrainingRun(models.Model):
    """The external run that produced a version (an MLflow or W&B run). The URL is a record, never fetched."""

    version = models.OneToOneField("versions.ModelVersion", on_delete=models.CASCADE, related_name="training_run")
    run_id = models.CharField(max_length=200, blank=True, db_index=True)
    url = models.CharField(max_length=1000, blank=True)

    def __str__(self) -> str:
        return self.run_id or self.url
