from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.models.models import RegisteredModel


class ModelCard(models.Model):
    """A structured card, like the Hugging Face Hub's: a Markdown body and the fields reviewers and users look for.

    One per model (`version` empty) and at most one per version. The evaluation results are not stored: they are
    the version's metrics (the model card's: its production version's), read when the card is shown.
    """

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="cards")
    version = models.OneToOneField("versions.ModelVersion", null=True, blank=True, on_delete=models.CASCADE, related_name="card")
    body = models.TextField(blank=True, help_text="Markdown. Raw HTML is shown as text.")
    license = models.CharField(max_length=100, blank=True, help_text="An SPDX identifier (apache-2.0, mit) or a name.")
    intended_use = models.TextField(blank=True)
    limitations = models.TextField(blank=True)
    training_data = models.TextField(blank=True, help_text="What the model was trained on, in a few sentences.")
    source = models.CharField(max_length=200, blank=True, help_text="Where the card came from, e.g. README.md in the artifacts.")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model"], condition=Q(version__isnull=True), name="one_card_per_model")]

    def __str__(self) -> str:
        return f"card of {self.version or self.model}"

    @property
    def is_empty(self) -> bool:
        return not any((self.body, self.license, self.intended_use, self.limitations, self.training_data))
