from django.db.models import QuerySet
from django.http import Http404
from django.urls import reverse

from apps.models.permissions import visible_models

from .models import Comment


def thread(*, version=None, transition_request=None) -> QuerySet[Comment]:
    """A version's or a request's comments, oldest first, with their authors (one query per page)."""
    if (version is None) == (transition_request is None):
        raise ValueError("A thread belongs to a version or to a transition request.")
    owner = {"version": version} if version is not None else {"transition_request": transition_request}
    return Comment.objects.filter(**owner).select_related("author").order_by("created_at", "id")


def comment_for(user, pk: int) -> Comment:
    """A comment on a model the user may view, or 404."""
    comment = Comment.objects.filter(pk=pk, model__in=visible_models(user)).select_related("model", "version", "author").first()
    if comment is None:
        raise Http404("No such comment.")
    return comment


def comment_url(comment: Comment) -> str:
    """The page of the comment's thread, at the comment."""
    if comment.transition_request_id:
        page = reverse("approvals:review", args=[comment.transition_request_id])
    else:
        page = reverse("versions:detail", args=[comment.model.name, comment.version.number])
    return f"{page}#comment-{comment.pk}"
