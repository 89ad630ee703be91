"""Bodies of the models API."""

from django.contrib.auth.models import Group
from rest_framework import serializers

from apps.web.serializers import Instant, JsonString, StrictSerializer, TagListField


class TeamNameField(JsonString):
    """A team by name: one the caller belongs to (any team for a superuser), like the edit page offers."""

    def run_validation(self, data=serializers.empty):
        if data == "":  # "" is no team, like null
            return None
        return super().run_validation(data)

    def to_internal_value(self, data):
        name = super().to_internal_value(data)
        user = self.context["request"].user
        team = (Group.objects.all() if user.is_superuser else user.groups.all()).filter(name=name).first()
        if team is None:
            if not Group.objects.filter(name=name).exists():
                raise serializers.ValidationError(f"No team named {name!r}.")
            raise serializers.ValidationError("You can only assign a team you belong to.")
        return team


class RegisteredModelCreateSerializer(serializers.Serializer):
    """POST of a model: its name, and what the edit page sets."""

    default_error_messages = {"invalid": "Send a JSON object: 'name' (string), optional 'description' (string), 'tags' (list of strings), 'team'."}

    name = JsonString(
        help_text="Letters, digits, '.', '-' and '_'; unique ignoring case.",
        error_messages={"required": "is required: the model's name, e.g. \"churn-classifier\".", "blank": "is required: the model's name."},
    )
    description = JsonString(allow_blank=True, required=False, default="", help_text="Model card in Markdown.")
    tags = TagListField(required=False, default=list)
    team = TeamNameField(allow_null=True, required=False, default=None, help_text="Owning team (one you belong to), or null for none.")


class RegisteredModelUpdateSerializer(StrictSerializer):
    """PATCH of a model: what the edit page changes. Keys left out keep their value."""

    description = JsonString(allow_blank=True, required=False, help_text="Model card in Markdown.")
    tags = TagListField(required=False, help_text="Replaces the model's tags.")
    team = TeamNameField(allow_null=True, required=False, help_text="Owning team (one you belong to), or null for none.")


class RegisteredModelSerializer(serializers.Serializer):
    """The model JSON of the API. Reads a model loaded with `models_with_pointers` (production_number) and its tags prefetched."""

    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    team = serializers.CharField(source="team.name", allow_null=True)
    tags = TagListField()
    latest_version = serializers.SerializerMethodField()
    production_version = serializers.IntegerField(source="production_number", allow_null=True)  # absent on a model just created
    created_at = Instant()

    def get_latest_version(self, model) -> int | None:
        return model.last_version_number or None
