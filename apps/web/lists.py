"""API lists: the query parameters a list accepts are its FilterSet's filters and the paginator's two; anything else,
an empty value or a bad value is a 400 naming the parameter. Pages come from REST_FRAMEWORK's DEFAULT_PAGINATION_CLASS."""

from collections.abc import Callable, Iterable

import django_filters
from django.core.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils.urls import remove_query_param, replace_query_param

from .keyset import Position, Seeking, keyset_page

CURSOR = "cursor"


def _paging_errors(params, paginator) -> dict[str, list[str]]:
    errors = {}
    page = params.get(paginator.page_query_param)
    if page is not None and not (page.isdigit() and int(page) > 0) and page not in paginator.last_page_strings:
        errors[paginator.page_query_param] = ["must be a page number from 1 on (or 'last')."]
    size = params.get(paginator.page_size_query_param)
    if size is not None and not (size.isdigit() and int(size) > 0):
        errors[paginator.page_size_query_param] = [f"must be a whole number from 1 to {paginator.max_page_size}."]
    return errors


def _filtered(params, queryset, filterset_class, request, accepted: set[str]) -> tuple[Iterable, dict[str, list[str]]]:
    errors: dict[str, list[str]] = {}
    filterset = filterset_class(params, queryset=queryset, request=request) if filterset_class else None
    accepted = accepted | set(filterset.filters if filterset else ())
    for key in params:
        if key not in accepted:
            errors[key] = [f"is not a parameter of this list; it accepts {', '.join(sorted(accepted))}."]
        elif filterset and key in filterset.filters and not params.get(key, "").strip():
            errors[key] = ["is empty; give a value or leave the parameter out."]
    if filterset is None:
        return queryset, errors
    if not filterset.is_valid():
        for key, messages in filterset.errors.items():
            errors.setdefault(key, []).extend(messages)
    return (filterset.qs if not errors else queryset), errors


def paginated(
    request,
    queryset: Iterable,
    render: Callable[[object], dict] | None = None,
    *,
    filterset_class: type[django_filters.FilterSet] | None = None,
    render_page: Callable[[list], list[dict]] | None = None,
    keyset: tuple[str, bool] | None = None,
) -> Response:
    """One page of `queryset` (narrowed by `filterset_class` from the query string), each item through `render`, or the
    whole page at once through `render_page` (to read what the items show in one query per relation).

    `keyset` = (key, descending): the list is in that order of a unique integer key, so `next` and `previous` are keyset
    links (`cursor`, apps.web.keyset) whose pages cost the same at any depth, unless the client asks for `page`.

    Raises a ValidationError (400, the JSON error envelope with one entry per parameter) before anything is read
    when a parameter is unknown, empty or bad.
    """
    paginator = api_settings.DEFAULT_PAGINATION_CLASS()
    params = request.query_params
    accepted = {paginator.page_query_param, paginator.page_size_query_param} | ({CURSOR} if keyset else set())
    items, errors = _filtered(params, queryset, filterset_class, request, accepted)
    errors.update(_paging_errors(params, paginator))
    position = Position()
    if keyset and CURSOR in params and paginator.page_query_param in params:
        errors[CURSOR] = [f"give '{CURSOR}' or '{paginator.page_query_param}', not both."]
    elif keyset:
        position = _cursor_position(params, errors)
    if errors:
        raise ValidationError(errors)
    if keyset and paginator.page_query_param not in params:
        return _keyset_response(request, items, keyset, position, paginator, render_page or (lambda page: [render(item) for item in page]))
    if keyset:
        items = Seeking(items, key=keyset[0], descending=keyset[1])  # numbered pages without a deep OFFSET over full rows
    page = paginator.paginate_queryset(items, request)
    return paginator.get_paginated_response(render_page(page) if render_page is not None else [render(item) for item in page])


def _cursor_position(params, errors: dict) -> Position:
    """Where the `cursor` parameter says the page starts (the first page without one); a bad cursor goes into `errors`."""
    try:
        return Position.decode(params[CURSOR]) if CURSOR in params else Position()
    except ValueError as exc:
        errors[CURSOR] = [str(exc)]
        return Position()


def _keyset_response(request, items, keyset: tuple[str, bool], position: Position, paginator, render_page) -> Response:
    """The page at `position` with the same keys as a numbered page: count (exact), next and previous (cursor links)."""
    key, descending = keyset
    page = keyset_page(items, key=key, descending=descending, size=paginator.get_page_size(request), position=position)
    return Response({"count": items.count(), **_cursor_links(request, page, paginator), "results": render_page(page.items)})


def _cursor_links(request, page, paginator) -> dict[str, str | None]:
    url = remove_query_param(request.build_absolute_uri(), paginator.page_query_param)

    def link(where: Position | None) -> str | None:
        return replace_query_param(url, CURSOR, where.encode()) if where is not None else None

    return {"next": link(page.next_position), "previous": link(page.previous_position)}


def cursor_page(request, queryset, *, key: str, descending: bool) -> tuple[list, dict[str, str | None]]:
    """For an answer that is more than a list (a history beside its model's name): the keyset page of `queryset` at the
    request's `cursor`, `page_size` rows (the API's default without it), and its `next` and `previous` links. A bad
    cursor or page size is a 400 naming it, like `paginated`'s."""
    paginator = api_settings.DEFAULT_PAGINATION_CLASS()
    params = request.query_params
    errors = {name: messages for name, messages in _paging_errors(params, paginator).items() if name != paginator.page_query_param}
    position = _cursor_position(params, errors)
    if errors:
        raise ValidationError(errors)
    page = keyset_page(queryset, key=key, descending=descending, size=paginator.get_page_size(request), position=position)
    return page.items, _cursor_links(request, page, paginator)
