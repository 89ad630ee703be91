"""Comments on versions and transition requests: written by anyone who may view the model, edited and deleted by their
author only, every change in the audit log. An @mention of a user who may view the model notifies them; a mention of
anyone else notifies nobody and the page says nothing about it, so a thread never reveals who exists or who has access.
"""

import re

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.approvals.models import TransitionRequest
from apps.audit import services as audit
from apps.models.permissions import Action, require, users_holding
from apps.notifications.models import Kind
from apps.notifications.services import notify
from apps.versions.models import ModelVersion

from .models import MAX_BODY, Comment
from .selectors import comment_url

# "@name": Django's username characters except "@", not preceded by a word character (so "me@example.com" is no
# mention); a trailing "." or "-" ends the sentence, not the name.
MENTION = re.compile(r"(?<![\w@.+-])@([\w.+-]*\w)")
# Code is quoted, not addressed: fenced blocks and inline code spans mention nobody (as on GitHub).
CODE = re.compile(r"^(```|~~~).*?(^\1|\Z)|`[^`\n]*`", re.S | re.M)
MAX_MENTIONS = 20


def mentioned_usernames(body: str) -> list[str]:
    """The usernames a text mentions outside code, in order, each once (at most MAX_MENTIONS)."""
    return list(dict.fromkeys(MENTION.findall(CODE.sub(" ", body))))[:MAX_MENTIONS]


def _checked_body(body: str) -> str:
    body = body.strip()
    if not body:
        raise ValidationError({"body": ["Write something first; Markdown is welcome."]})
    if len(body) > MAX_BODY:
        raise ValidationError({"body": [f"Keep a comment under {MAX_BODY} characters (this one has {len(body)}); split it in two."]})
    return body


def _notify_mentions(comment: Comment, actor, usernames: list[str]) -> None:
    if not usernames:
        return
    # One query for any number of mentions: the viewers by grant (users_holding), and superusers, who may view any model.
    may_view = Q(pk__in=users_holding(comment.model, Action.VIEW).values("pk")) | Q(is_superuser=True)
    viewers = get_user_model().objects.filter(may_view, username__in=usernames, is_active=True).exclude(pk=actor.pk)
    notify(
        recipients=viewers, kind=Kind.MENTIONED, model=comment.model, actor=actor,
        title=f"{actor.get_username()} mentioned you on {comment.subject()}", body=comment.body[:1000], url=comment_url(comment),
    )


def _snapshot(comment: Comment) -> dict:
    return {"on": comment.subject(), "body": comment.body}


@transaction.atomic
def comment_create(*, actor, body: str, version: ModelVersion | None = None, transition_request: TransitionRequest | None = None) -> Comment:
    """Add a comment to a version's or a request's thread, audited; the viewers it @mentions are notified."""
    if (version is None) == (transition_request is None):
        raise ValueError("Comment on a version or on a transition request.")
    model = (version or transition_request.version).model
    require(actor, Action.VIEW, model)
    comment = Comment.objects.create(
        model=model, version=version, transition_request=transition_request, author=actor, author_name=actor.get_username(), body=_checked_body(body)
    )
    audit.record(actor=actor, obj=comment, action="comment.created", after=_snapshot(comment), registered_model_id=model.pk)
    _notify_mentions(comment, actor, mentioned_usernames(comment.body))
    return comment


def require_author(comment: Comment, actor, doing: str) -> None:
    """Only a comment's author edits or deletes it (403 for anyone else who may see it; 404 for who may not)."""
    require(actor, Action.VIEW, comment.model)
    if comment.author_id is None or comment.author_id != actor.pk:
        raise PermissionDenied(f"Only the comment's author may {doing} it.")


@transaction.atomic
def comment_edit(*, comment: Comment, actor, body: str) -> Comment:
    """Change one's own comment (audited with the text before and after); only newly mentioned viewers are notified."""
    comment = Comment.objects.select_for_update(of=("self",)).select_related("model", "version").get(pk=comment.pk)
    require_author(comment, actor, "edit")
    body = _checked_body(body)
    if body == comment.body:
        return comment
    before = _snapshot(comment)
    earlier = set(mentioned_usernames(comment.body))
    comment.body, comment.edited_at = body, timezone.now()
    comment.save(update_fields=["body", "edited_at"])
    audit.record(actor=actor, obj=comment, action="comment.edited", before=before, after=_snapshot(comment), registered_model_id=comment.model_id)
    _notify_mentions(comment, actor, [name for name in mentioned_usernames(body) if name not in earlier])
    return comment


@transaction.atomic
def comment_delete(*, comment: Comment, actor) -> None:
    """Delete one's own comment; the audit log keeps what it said."""
    comment = Comment.objects.select_for_update(of=("self",)).select_related("model", "version").get(pk=comment.pk)
    require_author(comment, actor, "delete")
    audit.record(actor=actor, obj=comment, action="comment.deleted", before=_snapshot(comment), registered_model_id=comment.model_id)
    comment.delete()
