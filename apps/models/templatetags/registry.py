from django import template
from django.utils.safestring import mark_safe
from markdown_it import MarkdownIt

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
