"""What the MLflow client needs that the registry does not keep otherwise: key-value tags, a version's `source`, and
files uploaded through `mlflow-artifacts` that no version uses yet."""

from django.conf import settings
from django.db import models

from apps.models.models import RegisteredModel
from apps.versions.models import BlobReservation, ModelVersion

TAG_KEY_MAX = 250
TAG_VALUE_MAX = 5000


class KeyTag(models.Model):
    """An MLflow tag (`key` = `value`); the registry's own tags are plain names."""

    key = models.CharField(max_length=TAG_KEY_MAX)
    value = models.TextField(blank=True, max_length=TAG_VALUE_MAX)

    class Meta:
        abstract = True
        ordering = ["key"]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class RegisteredModelKeyTag(KeyTag):
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="key_tags")

    class Meta(KeyTag.Meta):
        constraints = [models.UniqueConstraint(fields=["model", "key"], name="one_key_tag_per_model_and_key")]


class VersionKeyTag(KeyTag):
    """Editable after registration, like the version's description."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="key_tags")

    class Meta(KeyTag.Meta):
        constraints = [models.UniqueConstraint(fields=["version", "key"], name="one_key_tag_per_version_and_key")]


class VersionSource(models.Model):
    """The `source` URI an MLflow client registered a version from: a record, never fetched."""

    version = models.OneToOneField(ModelVersion, on_delete=models.CASCADE, related_name="mlflow_source")
    source = models.CharField(max_length=1000)

    def __str__(self) -> str:
        return self.source


class StagedArtifact(models.Model):
    """A file uploaded with `PUT /api/2.0/mlflow-artifacts/artifacts/<path>` that no version uses yet.

    The bytes are already in the content-addressed blob store; `reservation` keeps the blob collector away from them
    until it expires (MLFLOW_UPLOAD_HOURS), and the collector's removal of the expired reservation deletes this row
    (CASCADE): an abandoned upload is swept with the other unused blobs. Only its owner sees, lists, registers or
    overwrites it. Registering a version from it deletes the row (the version's artifact rows then keep the blob).
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    path = models.CharField(max_length=1024)
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    reservation = models.ForeignKey(BlobReservation, on_delete=models.CASCADE, related_name="+")
    uploaded_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["path"]
        constraints = [models.UniqueConstraint(fields=["owner", "path"], name="one_staged_artifact_per_owner_and_path")]

    def __str__(self) -> str:
        return self.path
