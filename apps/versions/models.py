import uuid

from django.conf import settings
from django.db import models
from taggit.managers import TaggableManager, _TaggableManager
from taggit.models import TaggedItemBase

from apps.models.models import RegisteredModel
from apps.models.permissions import visible_models

from .lifecycle import Stage


class Flavor(models.TextChoices):
    HUGGINGFACE = "huggingface", "Hugging Face"
    SENTENCE_TRANSFORMERS = "sentence-transformers", "Sentence Transformers"
    PYTORCH = "pytorch", "PyTorch"
    ONNX = "onnx", "ONNX"
    SKLEARN = "sklearn", "scikit-learn"
    TENSORFLOW = "tensorflow", "TensorFlow"
    XGBOOST = "xgboost", "XGBoost"
    CUSTOM = "custom", "Custom"


class ModelVersionQuerySet(models.QuerySet):
    def production(self):
        """The version serving production (at most one per model, a database constraint)."""
        return self.filter(stage=Stage.PRODUCTION)

    def visible_to(self, user):
        return self.filter(model__in=visible_models(user))


class UUIDTaggableManager(_TaggableManager):
    """Tags of a model with a UUID key, prefetchable on every database.

    taggit matches prefetched tags to versions by the raw join column. SQLite returns a UUID column as a hex
    string, which never equals the version's UUID: every version then showed no tags, and saving the edit form
    (initialised from that empty list) deleted them.
    """

    def get_prefetch_querysets(self, instances, querysets=None):
        queryset, rel_obj_attr, instance_attr, single, cache_name, is_descriptor = super().get_prefetch_querysets(instances, querysets)
        to_uuid = ModelVersion._meta.pk.to_python
        return queryset, (lambda tag: to_uuid(rel_obj_attr(tag))), instance_attr, single, cache_name, is_descriptor


class ModelVersion(models.Model):
    """An immutable snapshot: artifacts and training metadata never change; description, tags and stage may."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.DRAFT, db_index=True)
    description = models.TextField(blank=True)
    tags = TaggableManager(blank=True, through="VersionTag", manager=UUIDTaggableManager)
    flavor = models.CharField(max_length=32, choices=Flavor.choices, default=Flavor.CUSTOM)
    hyperparameters = models.JSONField(default=dict, blank=True)
    code_repository = models.CharField(max_length=500, blank=True)
    code_commit = models.CharField(max_length=64, blank=True)
    code_branch = models.CharField(max_length=255, blank=True)
    code_dirty = models.BooleanField(null=True, blank=True)
    requirements = models.TextField(blank=True, help_text="requirements.txt or lock file contents.")
    python_version = models.CharField(max_length=32, blank=True)
    framework = models.CharField(max_length=64, blank=True)
    framework_version = models.CharField(max_length=64, blank=True)
    environment_image = models.CharField(max_length=300, blank=True, help_text="Container image reference or digest.")
    environment = models.JSONField(default=dict, blank=True, help_text="Other environment facts (OS, CUDA, hardware).")
    inspection = models.JSONField(default=dict, blank=True, help_text="What validation found in the files (written by the validation job).")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    stage_changed_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="Any change the version's JSON shows; part of its ETag.")

    objects = ModelVersionQuerySet.as_manager()

    class Meta:
        ordering = ["model", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["model", "number"], name="version_number_unique_per_model"),
            models.UniqueConstraint(
                fields=["model"], condition=models.Q(stage=Stage.PRODUCTION), name="one_production_version_per_model"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.number}"


class VersionTag(TaggedItemBase):
    content_object = models.ForeignKey(ModelVersion, on_delete=models.CASCADE)


class Metric(models.Model):
    """One evaluation metric as its own row so versions can be filtered and compared by value."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="metrics")
    name = models.CharField(max_length=128)
    value = models.FloatField()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["version", "name"], name="metric_name_unique_per_version")]
        indexes = [models.Index(fields=["name", "value"])]

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


class Artifact(models.Model):
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="artifacts")
    path = models.CharField(max_length=1024, help_text="Canonical relative path inside the version.")
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64, db_index=True)
    content_type = models.CharField(max_length=128, default="application/octet-stream")

    class Meta:
        ordering = ["path"]
        constraints = [models.UniqueConstraint(fields=["version", "path"], name="artifact_path_unique_per_version")]

    def __str__(self) -> str:
        return self.path


class BlobLocation(models.Model):
    """A blob whose bytes stay where an upload session sent them (S3), not under its digest's key (`paths.blob_key`).

    A multipart upload's key is fixed before its bytes, and so their digest, are known; keeping the verified object
    where it landed spares a server-side copy of every uploaded byte. One row per digest: a later upload of the same
    bytes is deleted instead of located (apps.versions.blobs.blob_locate).
    """

    sha256 = models.CharField(max_length=64, unique=True)
    key = models.CharField(max_length=1024, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.sha256[:12]} at {self.key}"


class BlobReservation(models.Model):
    """A registration's claim on a blob, from before it decides to reuse or store the blob until its version commits.

    One row per registration and digest, so registrations never wait on each other's rows. The blob garbage
    collector deletes a blob only when no artifact row references it and no unexpired reservation names it,
    decided under a lock (apps.versions.blobs).
    """

    sha256 = models.CharField(max_length=64, db_index=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.sha256[:12]} until {self.expires_at:%Y-%m-%d %H:%M:%S}"


class StageTransition(models.Model):
    """One applied stage change: the version's stage history."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="transitions")
    from_stage = models.CharField(max_length=16, choices=Stage.choices)
    to_stage = models.CharField(max_length=16, choices=Stage.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.version}: {self.from_stage} -> {self.to_stage}"


class PointerChangeKind(models.TextChoices):
    PROMOTION = "promotion", "Promotion"
    ROLLBACK = "rollback", "Rollback"
    RETIREMENT = "retirement", "Retirement"


class PointerChange(models.Model):
    """One move of a pointer (production or a free alias): from `changed_at` on it pointed at `version` (None: nowhere)."""

    kind = models.CharField(max_length=16, choices=PointerChangeKind.choices, default=PointerChangeKind.PROMOTION)
    version = models.ForeignKey(ModelVersion, null=True, on_delete=models.PROTECT, related_name="+")
    previous_version = models.ForeignKey(ModelVersion, null=True, on_delete=models.PROTECT, related_name="+")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.TextField(blank=True)
    changed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True


class ProductionPointerChange(PointerChange):
    """The production pointer's history: from `changed_at` on, `version` (None: nothing) served production."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="pointer_changes")

    class Meta:
        ordering = ["-changed_at", "-id"]
        indexes = [models.Index(fields=["model", "changed_at"])]

    def __str__(self) -> str:
        return f"{self.model}: production -> {self.version or 'none'}"


class ModelAlias(models.Model):
    """A free alias of a model (`champion`, `eu-prod`): a named pointer at one version. One version may carry several.

    The built-in `production` alias is no row here: it is the production stage's pointer (ProductionPointerChange).
    Moved only through `apps.approvals.services.version_transition`, which applies its policy (AliasPolicy).
    """

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=128)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="aliases")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="alias_name_unique_per_model")]

    def __str__(self) -> str:
        return f"{self.model.name}@{self.name}"


class AliasChange(PointerChange):
    """A free alias's history: from `changed_at` on, `alias` pointed at `version` (None: the alias was deleted).

    Keyed by the alias's name, not its row, so the history outlives a deletion and continues if the name returns.
    """

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="alias_changes")
    alias = models.CharField(max_length=128)

    class Meta:
        ordering = ["-changed_at", "-id"]
        indexes = [models.Index(fields=["model", "alias", "changed_at"])]

    def __str__(self) -> str:
        return f"{self.model}@{self.alias} -> {self.version or 'none'}"


class Deployment(models.Model):
    """What a deployment target (a named environment such as prod-eu) last reported serving, and the alias it follows."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="deployments")
    environment = models.SlugField(max_length=64)
    follows = models.CharField(max_length=128, default="production", help_text="The alias this environment should serve; drift is judged against it.")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="deployments")
    reported_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    reported_at = models.DateTimeField()

    class Meta:
        ordering = ["environment"]
        constraints = [models.UniqueConstraint(fields=["model", "environment"], name="one_deployment_per_environment")]

    def __str__(self) -> str:
        return f"{self.model} in {self.environment}: v{self.version.number}"


class UploadSessionStatus(models.TextChoices):
    OPEN = "open", "Open"
    REGISTERED = "registered", "Registered"


class UploadFileStatus(models.TextChoices):
    PENDING = "pending", "Waiting for its bytes"
    STORED = "stored", "Stored"


class UploadSession(models.Model):
    """An upload of one version's files, resumable until it expires (apps.versions.upload_sessions).

    The client declares the files first; the metadata was checked when the session was made, so refusals come before
    any byte. Registration commits the session's manifest through the one registration service.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="upload_sessions")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    metadata = models.JSONField(default=dict, help_text="The checked metadata document the registration will use.")
    status = models.CharField(max_length=16, choices=UploadSessionStatus.choices, default=UploadSessionStatus.OPEN)
    version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"upload {self.pk} of {self.model_id}"


class UploadSessionFile(models.Model):
    """One declared file of a session: stored already (its blob is readable by the caller, or it arrived and matched)
    or pending. On S3 `upload_id` is its multipart upload at `upload_key` (where a verified file then stays, as its blob's
    location); on local disk its bytes go to a spool file."""

    session = models.ForeignKey(UploadSession, on_delete=models.CASCADE, related_name="files")
    index = models.PositiveIntegerField()
    path = models.CharField(max_length=1024)
    size = models.BigIntegerField()
    declared_sha256 = models.CharField(max_length=64, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, help_text="Of the stored bytes, once stored.")
    status = models.CharField(max_length=16, choices=UploadFileStatus.choices, default=UploadFileStatus.PENDING)
    deduplicated = models.BooleanField(default=False, help_text="Stored already: a version the caller may view holds these bytes.")
    part_size = models.BigIntegerField(default=0)
    upload_id = models.CharField(max_length=1024, blank=True)
    upload_key = models.CharField(max_length=1024, blank=True, help_text="S3: the key of the current multipart upload, new for each attempt.")

    class Meta:
        ordering = ["index"]
        constraints = [models.UniqueConstraint(fields=["session", "index"], name="upload_file_index_unique_per_session")]

    def __str__(self) -> str:
        return self.path
