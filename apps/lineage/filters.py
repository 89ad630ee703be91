import django_filters

from .selectors import datasets_matching


class DatasetFilter(django_filters.FilterSet):
    """The API's datasets list."""

    search = django_filters.CharFilter(method="filter_search", help_text="Part of the name, URI or digest.")

    def filter_search(self, queryset, name, value):
        return datasets_matching(queryset, value.strip())
