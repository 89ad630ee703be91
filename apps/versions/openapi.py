"""How the version document's custom fields read in the OpenAPI schema (registered with drf-spectacular on import)."""

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import build_array_type, build_basic_type, build_object_type
from drf_spectacular.types import OpenApiTypes


class TagsSchema(OpenApiSerializerFieldExtension):
    target_class = "apps.versions.document.Tags"

    def map_serializer_field(self, auto_schema, direction):
        return build_array_type(build_basic_type(OpenApiTypes.STR))


class MetricsSchema(OpenApiSerializerFieldExtension):
    target_class = "apps.versions.document.Metrics"

    def map_serializer_field(self, auto_schema, direction):
        return build_object_type(additionalProperties=build_basic_type(OpenApiTypes.NUMBER), description="Metric name -> value.")


class JsonObjectSchema(OpenApiSerializerFieldExtension):
    target_class = "apps.versions.document.JsonObject"

    def map_serializer_field(self, auto_schema, direction):
        return build_object_type(additionalProperties={})


class LatestValidationSchema(OpenApiSerializerFieldExtension):
    target_class = "apps.versions.serializers.LatestValidation"

    def map_serializer_field(self, auto_schema, direction):
        return auto_schema.resolve_serializer(self.target.serializer, direction).ref
