from django import template

from apps.web import formatting

from ..selectors import reproduce_spec as _reproduce_spec

register = template.Library()


@register.simple_tag(takes_context=True)
def reproduce_spec(context, version) -> dict:
    """`{% reproduce_spec version as spec %}`: what it takes to rebuild the version, for the page's user."""
    return _reproduce_spec(context["request"].user, version)


@register.filter
def pretty_json(value) -> str:
    """The recipe in the order it was built (it reads top-down), not sorted."""
    return formatting.pretty_json(value, sort_keys=False)


@register.filter
def relation_verb(relation: str) -> str:
    """fine_tuned_from -> "fine-tuned" (as in "fine-tuned from sentiment v2")."""
    return relation.removesuffix("_from").replace("_", "-")


@register.filter
def http_url(url: str) -> str:
    """The URL if it is http(s), else "" (run URLs are checked at registration; this keeps a bad one from becoming a link)."""
    return url if isinstance(url, str) and url.lower().startswith(("http://", "https://")) else ""
