from django.db import models

from apps.versions.models import ModelVersion


class ManifestSignature(models.Model):
    """The registry's signature on a version's manifest, made when the version entered production or a governed
    alias. `payload` is the exact signed text (see `services.manifest_sign`); rows are never changed."""

    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="signatures")
    pointer = models.CharField(max_length=200, help_text='"production", or "@<alias>" for a governed alias.')
    key_id = models.CharField(max_length=64)
    payload = models.TextField(help_text="The signed statement, canonical JSON, exactly as signed.")
    signature = models.CharField(max_length=100, help_text="Ed25519 signature (base64) over the DSSE encoding of the payload.")
    signed_at = models.DateTimeField()

    class Meta:
        ordering = ["-signed_at", "-id"]
        indexes = [models.Index(fields=["version", "-signed_at"])]

    def __str__(self) -> str:
        return f"{self.version} as {self.pointer} ({self.key_id})"
