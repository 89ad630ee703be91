from rest_framework import serializers

from apps.web.serializers import Instant, JsonString, StrictSerializer

from .services import MAX_BODY_CHARS, MAX_FIELD_CHARS


class EvaluationResultSerializer(serializers.Serializer):
    metric = serializers.CharField()
    value = serializers.FloatField()
    datasets = serializers.ListField(child=serializers.CharField(), help_text="Evaluation datasets of the version.")


class ModelCardSerializer(serializers.Serializer):
    """A card as the API answers it: its fields (empty strings when unset) and the evaluation results it shows."""

    body = serializers.CharField()
    license = serializers.CharField()
    intended_use = serializers.CharField()
    limitations = serializers.CharField()
    training_data = serializers.CharField()
    source = serializers.CharField()
    updated_at = Instant(allow_null=True)
    updated_by = serializers.CharField(allow_null=True)
    evaluated_version = serializers.IntegerField(allow_null=True, help_text="Whose metrics the evaluation results are (the model card: production's).")
    evaluation_results = EvaluationResultSerializer(many=True)


class ModelCardWriteSerializer(StrictSerializer):
    """PUT replaces the card: a key left out is written empty."""

    body = JsonString(required=False, allow_blank=True, max_length=MAX_BODY_CHARS, default="")
    license = JsonString(required=False, allow_blank=True, max_length=100, default="")
    intended_use = JsonString(required=False, allow_blank=True, max_length=MAX_FIELD_CHARS, default="")
    limitations = JsonString(required=False, allow_blank=True, max_length=MAX_FIELD_CHARS, default="")
    training_data = JsonString(required=False, allow_blank=True, max_length=MAX_FIELD_CHARS, default="")
    source = JsonString(required=False, allow_blank=True, max_length=200, default="")
