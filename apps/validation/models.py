from django.conf import settings
from django.db import models

from apps.models.models import RegisteredModel
from apps.versions.models import ModelVersion


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    ERROR = "error", "Error"


FINISHED = (JobStatus.PASSED, JobStatus.FAILED, JobStatus.ERROR)


class Verdict(models.TextChoices):
    PASS = "pass", "Pass"
    WARN = "warn", "Warning"
    FAIL = "fail", "Fail"
    SKIP = "skip", "Not applicable"
    ERROR = "error", "Error"


class QualityStatus(models.TextChoices):
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"


class ValidationJob(models.Model):
    """One run of every check on one version. The row is the outbox: it exists before any message is sent."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="validation_jobs")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="Last time a message was handed to the broker.")
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="A running job whose heartbeat is stale is taken over.")
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    unsafe_finding = models.BooleanField(default=False, help_text="An artifact imports code outside the allow-list when unpickled.")
    quality_status = models.CharField(max_length=16, choices=QualityStatus.choices, blank=True, help_text="Empty until the job has finished.")
    quality_baseline = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    quality_rules = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["version", "-created_at"])]

    def __str__(self) -> str:
        return f"validation of {self.version} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def max_attempts(self) -> int:
        return settings.VALIDATION_MAX_ATTEMPTS

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class CheckResult(models.Model):
    job = models.ForeignKey(ValidationJob, on_delete=models.CASCADE, related_name="checks")
    name = models.CharField(max_length=64)
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    summary = models.CharField(max_length=500)
    details = models.JSONField(default=dict, blank=True)
    checker_version = models.CharField(max_length=32)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["job", "name"], name="one_result_per_check_per_job")]

    def __str__(self) -> str:
        return f"{self.name}: {self.verdict}"


class Direction(models.TextChoices):
    HIGHER = "higher", "Higher is better"
    LOWER = "lower", "Lower is better"


class RegressionKind(models.TextChoices):
    ABSOLUTE = "absolute", "Absolute"
    RELATIVE = "relative", "Relative (fraction of baseline)"


class ValidationPolicy(models.Model):
    """Per-model settings managers edit: required files and the quality gate's baseline."""

    model = models.OneToOneField(RegisteredModel, on_delete=models.CASCADE, related_name="validation_policy")
    required_file_patterns = models.JSONField(default=list, blank=True, help_text="Glob patterns every version must match, e.g. 'tokenizer/*.json'.")
    pinned_baseline = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Compare against this version instead of the one in production.",
    )

    def __str__(self) -> str:
        return f"policy of {self.model}"


class QualityRule(models.Model):
    policy = models.ForeignKey(ValidationPolicy, on_delete=models.CASCADE, related_name="rules")
    metric = models.CharField(max_length=128)
    direction = models.CharField(max_length=8, choices=Direction.choices, default=Direction.HIGHER)
    allowed_regression = models.FloatField(default=0.0, help_text="How much worse than the baseline is still acceptable.")
    regression_kind = models.CharField(max_length=8, choices=RegressionKind.choices, default=RegressionKind.ABSOLUTE)
    min_value = models.FloatField(null=True, blank=True)
    max_value = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["metric"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "metric"], name="one_rule_per_metric"),
            models.CheckConstraint(condition=models.Q(allowed_regression__gte=0), name="allowed_regression_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.metric} ({self.direction})"
