from django.db import models


class Dataset(models.Model):
    """A dataset as a record. Its URI is a label: the registry never fetches it."""

    name = models.CharField(max_length=200)
    uri = models.CharField(max_length=1000)
    digest = models.CharField(max_length=200, blank=True, help_text="Version, content digest or snapshot id.")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "uri"]
        constraints = [models.UniqueConstraint(fields=["uri", "digest"], name="dataset_unique_uri_digest")]

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
