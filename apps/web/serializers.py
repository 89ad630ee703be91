"""Serializer pieces every app's API bodies share: reading a body, refusing keys nobody declared, and the tags list."""

from datetime import datetime

from django.core.exceptions import ValidationError
from django.utils.dateparse import parse_datetime
from rest_framework import serializers


class StrictSerializer(serializers.Serializer):
    """A body with a key the serializer does not declare is refused (400 naming it), not silently ignored."""

    def to_internal_value(self, data):
        if hasattr(data, "keys"):
            unknown = sorted(set(data.keys()) - set(self.fields))
            if unknown:
                allowed = ", ".join(self.fields)
                raise serializers.ValidationError({key: [f"is not a field here; send only {allowed}."] for key in unknown})
        return super().to_internal_value(data)


class JsonString(serializers.CharField):
    """A JSON string, never a number turned into one. Kept as sent (no trimming)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("must be a string.")
        return super().to_internal_value(data)


class Instant(serializers.DateTimeField):
    """An aware instant as Python's isoformat writes it ("+00:00", not DRF's "Z"): the API's format since its first day."""

    def to_representation(self, value):
        return value.isoformat() if value is not None else None


class TagListField(serializers.ListField):
    """Tags as a JSON list of strings (up to 64 characters each), stored stripped, without duplicates, sorted."""

    child = JsonString(max_length=64, allow_blank=False, trim_whitespace=True)

    default_error_messages = {"not_a_list": "must be a list of strings (up to 64 characters each)."}

    def to_representation(self, value):
        """Sorted names, from an object's tag manager (prefetched) or a list."""
        return sorted(tag.name for tag in value.all()) if hasattr(value, "all") else sorted(value)

    def to_internal_value(self, data):
        try:
            return sorted(set(super().to_internal_value(data)))
        except serializers.ValidationError as exc:
            if not isinstance(exc.detail, dict):
                raise
            # One flat list of messages per field, as the error envelope promises, naming the tag (from 1).
            raise serializers.ValidationError(
                [f"Tag #{int(index) + 1} {message}" for index, messages in exc.detail.items() for message in messages]
            ) from exc


def validated_body(serializer_class: type[serializers.Serializer], request, **kwargs) -> dict:
    """The request's body checked by `serializer_class`: its validated data, or a 400 naming each field (the error envelope)."""
    body = serializer_class(data=request.data, context={"request": request}, **kwargs)
    body.is_valid(raise_exception=True)
    return body.validated_data


def instant_parameter(request, name: str = "at") -> datetime | None:
    """The aware instant a query parameter gives (None when it is absent); anything else is a 400 naming it."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        when = parse_datetime(raw)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ValidationError({name: ["Give an ISO 8601 instant with a time zone, e.g. 2026-11-27T10:00:00Z."]})
    return when
