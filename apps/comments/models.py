from django.conf import settings
from django.db import models

from apps.approvals.models import TransitionRequest
from apps.models.models import RegisteredModel
from apps.versions.models import ModelVersion

MAX_BODY = 10_000


class Comment(models.Model):
    """One comment in the thread of a version or of a transition request (exactly one of the two). Markdown, shown
    through the registry's sanitizing renderer."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="+", help_text="Whose view permission governs it.")
    version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="comments")
    transition_request = models.ForeignKey(TransitionRequest, null=True, blank=True, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    author_name = models.CharField(max_length=150, help_text="Copied so the thread survives the user's deletion.")
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(version__isnull=False, transition_request__isnull=True)
                | models.Q(version__isnull=True, transition_request__isnull=False),
                name="comment_on_a_version_or_a_request",
            )
        ]

    def __str__(self) -> str:
        return f"comment {self.pk} on {self.subject()}"

    def subject(self) -> str:
        if self.transition_request_id:
            return f"request #{self.transition_request_id}"
        return f"{self.model.name} v{self.version.number}"
