"""The version JSON of the API: the metadata document (`document.py`) plus what the registry adds (number, stage,
files, validation). Reads a version loaded by `selectors.versions_with_details` without further queries."""

from django.urls import reverse
from rest_framework import serializers

from apps.web.serializers import Instant

from .document import DocumentSerializer, Text, WholeNumber
from .models import ModelVersion


def latest_job(version: ModelVersion):
    """The newest validation job, from the prefetched list (see `selectors.versions_with_details`)."""
    jobs = list(version.validation_jobs.all())
    return jobs[0] if jobs else None


class CheckSerializer(serializers.Serializer):
    name = serializers.CharField()
    verdict = serializers.CharField()
    summary = serializers.CharField()
    details = serializers.JSONField()
    checker_version = serializers.CharField()


class ValidationJobSerializer(serializers.Serializer):
    status = serializers.CharField()
    job_id = serializers.IntegerField(source="pk")
    attempts = serializers.IntegerField()
    error = serializers.CharField()
    created_at = Instant()
    started_at = Instant(allow_null=True)
    finished_at = Instant(allow_null=True)
    unsafe_finding = serializers.BooleanField()
    checks = CheckSerializer(many=True)


class QualitySerializer(serializers.Serializer):
    status = serializers.SerializerMethodField()
    baseline_version = serializers.IntegerField(source="quality_baseline.number", allow_null=True)
    rules = serializers.JSONField(source="quality_rules")

    def get_status(self, job) -> str:
        return job.quality_status or ("pending" if not job.is_finished else "none")


class LatestValidation(serializers.Field):
    """The version's newest validation job through `serializer`, or `none` when it has never been validated."""

    def __init__(self, serializer: serializers.Serializer, none: dict, **kwargs):
        self.serializer, self.none = serializer, none
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, version):
        job = latest_job(version)
        return self.serializer.to_representation(job) if job is not None else dict(self.none)


class VersionSerializer(DocumentSerializer):
    """A registered version as the API shows it (detail, list items, stage lookups, the registration's answer)."""

    FIELD_ORDER = (
        "id", "model", "number", "stage", "description", "tags", "flavor", "hyperparameters", "metrics", "datasets", "code",
        "dependencies", "environment", "run", "lineage", "artifacts", "inspection", "validation", "quality", "created_by",
        "created_at", "stage_changed_at",
    )

    id = serializers.CharField(read_only=True)
    model = serializers.CharField(source="model.name", read_only=True)
    number = serializers.IntegerField(read_only=True)
    stage = serializers.CharField(read_only=True)
    lineage = serializers.SerializerMethodField()
    inspection = serializers.JSONField(read_only=True)
    validation = LatestValidation(ValidationJobSerializer(), {"status": "none", "checks": []})
    quality = LatestValidation(QualitySerializer(), {"status": "none", "baseline_version": None, "rules": []})
    created_by = serializers.CharField(source="created_by.get_username", read_only=True, allow_null=True)
    created_at = Instant(read_only=True)
    stage_changed_at = Instant(read_only=True)

    def get_fields(self):
        fields = super().get_fields()
        return {name: fields[name] for name in self.FIELD_ORDER + tuple(name for name in fields if name not in self.FIELD_ORDER)}

    def get_lineage(self, version) -> dict:
        request = self.context.get("request")
        kwargs = {"name": version.model.name, "number": version.number}
        return {
            key: request.build_absolute_uri(url) if request is not None else url
            for key, url in (("graph_url", reverse("api:version-lineage", kwargs=kwargs)), ("impact_url", reverse("api:version-impact", kwargs=kwargs)))
        }


def version_to_dict(version: ModelVersion, request=None) -> dict:
    return VersionSerializer(version, context={"request": request}).data


VERSION_SERVED_MESSAGE = 'Give the version number the environment serves, e.g. {{"version": 7}}.'


class DeploymentReportBodySerializer(serializers.Serializer):
    """PUT .../deployments/<environment>/: the version the environment serves, and optionally the alias it follows."""

    default_error_messages = {"invalid": "Send a JSON object with the 'version' the environment serves."}

    version = WholeNumber(error_messages={key: VERSION_SERVED_MESSAGE for key in ("invalid", "required", "null")})
    follows = Text(help_text="The alias the environment follows (drift is judged against it); left out, unchanged (production at first).")
