import django_filters
from django.contrib.auth.models import Group
from django.db.models import Exists, OuterRef

from apps.approvals.lifecycle import Stage
from apps.versions.models import ModelVersion


class RegisteredModelFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="filter_search", label="Search")
    stage = django_filters.ChoiceFilter(choices=Stage.choices, method="filter_stage", label="Has a version in", empty_label="any stage")
    tag = django_filters.CharFilter(field_name="tags__name", label="Tag")
    team = django_filters.ModelChoiceFilter(queryset=Group.objects.order_by("name"), label="Team", empty_label="any team")

    def filter_search(self, queryset, name, value):
        return queryset.search(value)

    def filter_stage(self, queryset, name, value):
        return queryset.filter(Exists(ModelVersion.objects.filter(model=OuterRef("pk"), stage=value)))
