from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from markdown_it import MarkdownIt

from apps.catalog.tables import header_sort

register = template.Library()

# "js-default" disables raw HTML (it is escaped) and refuses javascript:/vbscript:/data: links.
_markdown = MarkdownIt("js-default", {"linkify": False, "typographer": False}).enable("table")


@register.filter
def markdown(text: str) -> str:
    return mark_safe(_markdown.render(text or ""))


@register.filter
def filesize(num_bytes: int) -> str:
    size = float(num_bytes or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


@register.simple_tag(takes_context=True)
def query_with(context, **changes) -> str:
    """The current query string with some parameters replaced (for pagination and filter links)."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        if value in (None, ""):
            params.pop(key, None)
        else:
            params[key] = value
    return "?" + params.urlencode() if params else "?"


@register.simple_tag(takes_context=True)
def query_with_key(context, key: str, value) -> str:
    """`query_with` for a parameter whose name is itself a variable (a page's second paged list)."""
    return query_with(context, **{key: value})


@register.filter
def duration_short(value) -> str:
    """A timedelta as '12 min', '3 h 5 min' or '2 d 4 h'."""
    seconds = int(value.total_seconds()) if value else 0
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{max(minutes, 0)} min"


@register.simple_tag(takes_context=True)
def sort_header(context, key: str, label: str, numeric: bool = False) -> str:
    """A sortable table's column header: a link that sorts by `key` (the other way round when it is the current sort),
    with aria-sort on the column sorted by. Context: request, sort (apps.catalog.tables.Sort), sort_columns."""
    sort = context["sort"]
    target = header_sort(sort, key, context["sort_columns"])
    link = query_with(context, sort=target, page=None, after=None, before=None, last=None)
    current = sort.key == key
    aria = format_html(' aria-sort="{}"', "descending" if sort.descending else "ascending") if current else ""
    arrow = ("▼" if sort.descending else "▲") if current else "↕"
    direction = "descending" if target.startswith("-") else "ascending"
    return format_html(
        '<th{}{}><a class="sort{}" href="{}" title="Sort {} by {}">{}<span class="sort-arrow" aria-hidden="true">{}</span></a></th>',
        aria, mark_safe(' class="num"') if numeric else "", " current" if current else "", link, direction, label, label, arrow,
    )


@register.simple_tag(takes_context=True)
def hidden_query(context, *excluded: str) -> str:
    """The current query parameters as hidden inputs, but those named (a form that changes some keeps the others)."""
    params = context["request"].GET
    return format_html_join("", '<input type="hidden" name="{}" value="{}">', (
        (key, value) for key in params if key not in excluded for value in params.getlist(key)
    ))
