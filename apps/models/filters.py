import django_filters
from django.contrib.auth.models import Group
from django.db.models import Exists, OuterRef

from apps.versions.lifecycle import Stage
from apps.versions.models import ModelVersion

from .models import ModelTag


class RegisteredModelFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="filter_search", label="Search")
    stage = django_filters.ChoiceFilter(choices=Stage.choices, method="filter_stage", label="Has a version in", empty_label="any stage")
    tag = django_filters.CharFilter(field_name="tags__name", label="Tag")
    team = django_filters.ModelChoiceFilter(queryset=Group.objects.order_by("name"), label="Team", empty_label="any team")

    def filter_search(self, queryset, name, value):
        return queryset.search(value)

    def filter_stage(self, queryset, name, value):
        return queryset.filter(Exists(ModelVersion.objects.filter(model=OuterRef("pk"), stage=value)))


class RegisteredModelApiFilter(RegisteredModelFilter):
    """The API's models list: the page's filters, with `search` for `q` and teams named rather than numbered."""

    q = None
    search = django_filters.CharFilter(method="filter_search", help_text="Part of the name or description.")
    team = django_filters.ModelChoiceFilter(queryset=Group.objects.all(), to_field_name="name", help_text="Name of the owning team.")
    tag = django_filters.CharFilter(method="filter_tag", help_text="Models carrying this tag.")
    ordering = django_filters.OrderingFilter(fields=(("name", "name"), ("created_at", "created")), help_text="name or created; '-' for descending.")

    def filter_tag(self, queryset, name, value):
        return queryset.filter(Exists(ModelTag.objects.filter(content_object=OuterRef("pk"), tag__name=value)))
