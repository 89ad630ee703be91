"""The versions list of the API: what `?stage=`, `?metric.accuracy__gte=` and `?ordering=` mean."""

import math

import django_filters
from django import forms
from django.db.models import Exists, F, OuterRef, Subquery

from .lifecycle import Stage
from .document import METRIC_NAME
from .models import Flavor, Metric, ModelVersion, VersionTag

METRIC_PREFIX = "metric."
METRIC_LOOKUPS = ("gt", "gte", "lt", "lte")
ORDERINGS = {"number": "number", "created": "created_at"}


def metric_parameter(key: str) -> tuple[str, str] | None:
    """`metric.accuracy__gte` -> ("accuracy", "gte"); None when the key is not a well-formed metric filter."""
    if not key.startswith(METRIC_PREFIX):
        return None
    name, _, lookup = key[len(METRIC_PREFIX):].rpartition("__")
    if lookup not in METRIC_LOOKUPS or not METRIC_NAME.match(name):
        return None
    return name, lookup


class FiniteFloatField(forms.FloatField):
    def validate(self, value):
        super().validate(value)
        if value is not None and not math.isfinite(value):
            raise forms.ValidationError("must be a finite number.")


class MetricFilter(django_filters.Filter):
    """Versions with a metric row of that name whose value passes the comparison (versions without it never match)."""

    field_class = FiniteFloatField

    def __init__(self, *, metric: str, lookup: str, **kwargs):
        super().__init__(**kwargs)
        self.metric, self.lookup = metric, lookup

    def filter(self, queryset, value):
        if value is None:
            return queryset
        rows = Metric.objects.filter(version=OuterRef("pk"), name=self.metric, **{f"value__{self.lookup}": value})
        return queryset.filter(Exists(rows))


class OrderingField(forms.CharField):
    def validate(self, value):
        super().validate(value)
        key = value.removeprefix("-")
        if key and key not in ORDERINGS and not (key.startswith(METRIC_PREFIX) and METRIC_NAME.match(key[len(METRIC_PREFIX):])):
            raise forms.ValidationError(f"use number, created or metric.<name>, with '-' in front for descending; not {value!r}.")


class IdFilter(django_filters.NumberFilter):
    field_class = forms.IntegerField


class VersionOrderingFilter(django_filters.Filter):
    """`number`, `created` or `metric.<name>`, `-` for descending; versions without the metric come last either way."""

    field_class = OrderingField

    def filter(self, queryset, value):
        if not value:
            return queryset
        descending, key = value.startswith("-"), value.removeprefix("-")
        if key in ORDERINGS:
            column = F(ORDERINGS[key])
        else:
            metric = Metric.objects.filter(version=OuterRef("pk"), name=key[len(METRIC_PREFIX):]).values("value")[:1]
            queryset = queryset.annotate(ordering_metric=Subquery(metric))
            column = F("ordering_metric")
        ordered = column.desc(nulls_last=True) if descending else column.asc(nulls_last=True)
        return queryset.order_by(ordered, "-number")


class VersionFilter(django_filters.FilterSet):
    """Filters of the API's versions list; `metric.<name>__<gt|gte|lt|lte>` filters are added for the keys sent."""

    stage = django_filters.ChoiceFilter(choices=Stage.choices)
    flavor = django_filters.ChoiceFilter(choices=Flavor.choices)
    tag = django_filters.CharFilter(method="filter_tag", help_text="Versions carrying this tag.")
    dataset = IdFilter(method="filter_dataset", help_text="Versions trained or evaluated on the dataset with this id.")
    registered_by = django_filters.CharFilter(field_name="created_by__username", help_text="Username of whoever registered the version.")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte", help_text="ISO 8601 instant, inclusive.")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt", help_text="ISO 8601 instant, exclusive.")
    ordering = VersionOrderingFilter(help_text="number, created or metric.<name>; '-' in front for descending. Default: -number.")

    class Meta:
        model = ModelVersion
        fields: list[str] = []

    def __init__(self, data=None, *args, **kwargs):
        super().__init__(data, *args, **kwargs)
        for key in data or ():
            parsed = metric_parameter(key)
            if parsed is not None:
                self.filters[key] = MetricFilter(metric=parsed[0], lookup=parsed[1], field_name=key, label=key)
                self.filters[key].parent = self

    def filter_tag(self, queryset, name, value):
        return queryset.filter(Exists(VersionTag.objects.filter(content_object=OuterRef("pk"), tag__name=value)))

    def filter_dataset(self, queryset, name, value):
        # Through the reverse relation (lineage sits above versions), as a subquery so a version used twice is listed once.
        return queryset.filter(pk__in=ModelVersion.objects.filter(dataset_links__dataset_id=value).values("pk"))
