from datetime import datetime, time, timedelta

import django_filters
from django.db.models import QuerySet
from django.utils import timezone

from apps.models.models import RegisteredModel

from .models import AuditEntry


def _day_start(day) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


class AuditEntryFilter(django_filters.FilterSet):
    """The same filters for the pages (form fields) and the API (query parameters)."""

    action = django_filters.CharFilter(field_name="action", label="Action")
    actor = django_filters.CharFilter(field_name="actor_name", lookup_expr="iexact", label="Actor")
    model = django_filters.CharFilter(method="filter_model", label="Model")
    since = django_filters.DateFilter(method="filter_since", label="From")
    until = django_filters.DateFilter(method="filter_until", label="To")
    q = django_filters.CharFilter(field_name="object_repr", lookup_expr="icontains", label="Object")

    class Meta:
        model = AuditEntry
        fields: list[str] = []

    def filter_model(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(registered_model_id__in=RegisteredModel.objects.filter(name__iexact=value).values("pk"))

    # Compared as instants (not `created_at__date`) so the created_at index serves both bounds.
    def filter_since(self, queryset: QuerySet, name: str, value) -> QuerySet:
        return queryset.filter(created_at__gte=_day_start(value))

    def filter_until(self, queryset: QuerySet, name: str, value) -> QuerySet:
        return queryset.filter(created_at__lt=_day_start(value + timedelta(days=1)))
