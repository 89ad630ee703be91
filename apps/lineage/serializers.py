"""Bodies of the datasets API: a dataset registered on its own is the version document's dataset (one set of rules),
without a role and with the team that may see it."""

from django.contrib.auth.models import Group
from rest_framework import serializers

from apps.versions.document import DatasetSerializer, Text

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
