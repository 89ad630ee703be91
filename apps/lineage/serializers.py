"""The datasets API: a dataset as it answers, and the body registering one (the version document's dataset, one set of
rules, without a role and with the team that may see it)."""

from django.contrib.auth.models import Group
from django.urls import reverse
from rest_framework import serializers

from apps.versions.document import DatasetSerializer, Text
from apps.web.serializers import Instant

from .services import TEAM_ERROR


class DatasetRegistrationSerializer(DatasetSerializer):
    """POST /api/v1/datasets/. Validated data: {"dataset": {name, uri, digest, size_bytes, description}, "team": Group | None}."""

    what = "a JSON object with 'name' and 'uri' (and optionally digest, size_bytes, description, team)"

    role = None
    team = Text(empty=None, help_text="A team you belong to, which may then see the dataset; null for none.")

    @classmethod
    def messages(cls) -> dict:
        return {**super().messages(), "invalid": f"Send {cls.what}."}

    def unknown_keys_message(self, unknown: list[str]) -> str:
        allowed = sorted(name for name, field in self.fields.items() if not field.read_only)
        return f"Unknown keys: {', '.join(unknown)}. Allowed: {', '.join(allowed)}."

    def validate_team(self, name: str | None) -> Group | None:
        if not name:
            return None
        team = Group.objects.filter(name=name).first()
        if team is None:
            raise serializers.ValidationError(TEAM_ERROR)
        return team  # membership is the service's rule (dataset_register)


class RegisteredDatasetSerializer(serializers.Serializer):
    """A dataset as the API shows it; `versions_using` only where the list annotates it (`datasets_for_list`)."""

    id = serializers.IntegerField(source="pk")
    name = serializers.CharField()
    uri = serializers.CharField()
    digest = serializers.CharField(allow_blank=True)
    size_bytes = serializers.IntegerField(allow_null=True)
    description = serializers.CharField(allow_blank=True)
    owner = serializers.CharField(source="owner.get_username", allow_null=True)
    team = serializers.CharField(source="team.name", allow_null=True)
    created_at = Instant()
    url = serializers.SerializerMethodField()
    versions_using = serializers.IntegerField(source="visible_versions", required=False)

    def get_url(self, dataset) -> str:
        url = reverse("api:dataset", kwargs={"pk": dataset.pk})
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url
