from django import template
from django.core.paginator import Paginator
from django.urls import reverse

from ..forms import CommentForm
from ..selectors import thread

register = template.Library()

PAGE_SIZE = 50


@register.inclusion_tag("comments/_thread.html", takes_context=True)
def comment_thread(context, *, version=None, transition_request=None) -> dict:
    """The comment thread of a version or a request, with the form to add one: one line on the page that shows it."""
    request = context["request"]
    page = Paginator(thread(version=version, transition_request=transition_request), PAGE_SIZE).get_page(request.GET.get("comments"))
    if version is not None:
        action = reverse("comments:version", args=[version.model.name, version.number])
    else:
        action = reverse("comments:request", args=[transition_request.pk])
    return {"request": request, "user": context["user"], "csrf_token": context.get("csrf_token"), "page": page, "action": action, "form": CommentForm()}
