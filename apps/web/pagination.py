from rest_framework.pagination import PageNumberPagination


class Pages(PageNumberPagination):
    """The one paginator of the API (REST_FRAMEWORK's DEFAULT_PAGINATION_CLASS): `page` and `page_size` (up to 500)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
