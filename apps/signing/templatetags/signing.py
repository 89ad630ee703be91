from django import template

from apps.signing.selectors import signature_summary, signatures_of

register = template.Library()


@register.simple_tag
def manifest_signatures(version) -> list[dict]:
    """The version's signatures for its page (one query)."""
    return [{**signature_summary(row), "signature": row.signature} for row in signatures_of(version)]
