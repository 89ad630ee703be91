"""Comment threads on the version and review pages: Markdown shown sanitized, @mentions notify only those who may view
the model, edits and deletions by the author only, every change in the audit log."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEntry
from apps.comments.models import Comment
from apps.comments.services import comment_create, mentioned_usernames
from apps.models.permissions import Action
from apps.models.services import model_permission_grant
from apps.notifications.models import Kind, Notification
from tests.helpers import pending_production_request, queries_for

pytestmark = pytest.mark.django_db


def test_mentions_are_names_after_an_at_sign_outside_code_not_email_addresses():
    text = "Thanks @reviewer, ask @lead. Mail me@example.com; @re.viewer-2 and @reviewer again, `@code`?\n```\n@decorator\n```\n@last"
    assert mentioned_usernames(text) == ["reviewer", "lead", "re.viewer-2", "last"]


def test_a_comment_on_a_version_is_shown_as_sanitized_markdown_and_audited(model, version, reviewer, web_for):
    client = web_for(reviewer)
    body = "**Looks good**, but <script>alert(1)</script> and [x](javascript:alert(1))"
    response = client.post(f"/models/{model.name}/versions/{version.number}/comments/", {"body": body})
    comment = Comment.objects.get()
    assert response.status_code == 302 and response.url == f"/models/{model.name}/versions/{version.number}/#comment-{comment.pk}"
    page = client.get(f"/models/{model.name}/versions/{version.number}/").text
    assert "<strong>Looks good</strong>" in page and "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert 'href="javascript:' not in page
    entry = AuditEntry.objects.get(action="comment.created")
    assert entry.actor == reviewer and entry.registered_model_id == model.pk and entry.after == {"on": "sentiment v1", "body": body}


def test_a_mention_notifies_a_viewer_and_nobody_else_and_reveals_nothing(model, version, owner, reviewer, outsider, web_for):
    client = web_for(reviewer)
    client.post(f"/models/{model.name}/versions/{version.number}/comments/", {"body": "@owner @outsider @nobody-at-all and me @reviewer"})
    (mention,) = Notification.objects.filter(kind=Kind.MENTIONED)
    assert mention.recipient == owner and mention.title == "reviewer mentioned you on sentiment v1"
    assert mention.url.startswith("/models/sentiment/versions/1/#comment-")
    page = client.get(f"/models/{model.name}/versions/{version.number}/").text
    # the thread shows each name the same way, known or not, viewer or not
    assert "@owner @outsider @nobody-at-all" in page


def test_a_comment_on_a_request_lives_on_its_review_page(model, owner, reviewer, web_for):
    transition_request = pending_production_request(model, owner)
    client = web_for(reviewer)
    response = client.post(f"/approvals/{transition_request.pk}/comments/", {"body": "Which split, @owner?"})
    assert response.status_code == 302 and response.url.startswith(f"/approvals/{transition_request.pk}/#comment-")
    assert "Which split" in client.get(f"/approvals/{transition_request.pk}/").text
    assert Notification.objects.get(kind=Kind.MENTIONED).title == f"reviewer mentioned you on request #{transition_request.pk}"


def test_an_empty_comment_is_refused_with_what_to_do(model, version, reviewer, web_for):
    client = web_for(reviewer)
    response = client.post(f"/models/{model.name}/versions/{version.number}/comments/", {"body": "   "}, follow=True)
    assert "Comment not posted: Write something first" in response.text and not Comment.objects.exists()


def test_an_outsider_can_neither_read_nor_write_a_thread(model, version, outsider, web_for):
    client = web_for(outsider)
    assert client.post(f"/models/{model.name}/versions/{version.number}/comments/", {"body": "hi"}).status_code == 404
    comment = comment_create(actor=model.created_by, body="internal", version=version)
    assert client.get(f"/comments/{comment.pk}/edit/").status_code == 404
    assert client.post(f"/comments/{comment.pk}/delete/").status_code == 404
    assert Comment.objects.count() == 1


def test_only_the_author_edits_or_deletes_and_both_are_audited(model, version, owner, reviewer, web_for):
    comment = comment_create(actor=reviewer, body="first thought", version=version)
    other = web_for(owner)
    assert other.get(f"/comments/{comment.pk}/edit/").status_code == 403
    assert other.post(f"/comments/{comment.pk}/edit/", {"body": "hijacked"}).status_code == 403
    assert other.post(f"/comments/{comment.pk}/delete/").status_code == 403

    author = web_for(reviewer)
    assert "first thought" in author.get(f"/comments/{comment.pk}/edit/").text
    assert author.post(f"/comments/{comment.pk}/edit/", {"body": "second thought, @owner"}).status_code == 302
    comment.refresh_from_db()
    assert comment.body == "second thought, @owner" and comment.edited_at is not None
    edited = AuditEntry.objects.get(action="comment.edited")
    assert edited.before["body"] == "first thought" and edited.after["body"] == "second thought, @owner"
    assert Notification.objects.filter(kind=Kind.MENTIONED, recipient=owner).count() == 1
    author.post(f"/comments/{comment.pk}/edit/", {"body": "second thought, @owner!"})  # already mentioned: not again
    assert Notification.objects.filter(kind=Kind.MENTIONED, recipient=owner).count() == 1

    assert author.post(f"/comments/{comment.pk}/delete/").status_code == 302
    assert not Comment.objects.exists()
    assert AuditEntry.objects.get(action="comment.deleted").before["body"] == "second thought, @owner!"


def test_the_version_page_costs_the_same_queries_with_more_comments(model, version, owner, reviewer, web_for):
    client = web_for(reviewer)
    comment_create(actor=owner, body="one", version=version)
    few = queries_for(client, f"/models/{model.name}/versions/{version.number}/")
    for index in range(5):
        comment_create(actor=reviewer if index % 2 else owner, body=f"more {index}", version=version)
    assert queries_for(client, f"/models/{model.name}/versions/{version.number}/") == few


def test_a_comment_costs_the_same_queries_however_many_viewers_it_mentions(model, version, owner, reviewer, make_user, web_for):
    viewers = [make_user(f"viewer{index}") for index in range(8)]
    for user in viewers:
        model_permission_grant(model=model, actor=owner, action=Action.VIEW, user=user)
    make_user("root", is_superuser=True)  # may view every model without a grant
    client, url = web_for(reviewer), f"/models/{model.name}/versions/{version.number}/comments/"

    def posting(body: str) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.post(url, {"body": body}).status_code == 302
        return len(ctx.captured_queries)

    posting("no mention yet")  # the first request fills the process's caches
    one = posting("@viewer0 have a look")
    many = posting(" ".join(f"@{user.username}" for user in viewers) + " @root @outsider")
    assert many == one
    mentioned = Notification.objects.filter(kind=Kind.MENTIONED).values_list("recipient__username", flat=True)
    assert sorted(mentioned) == sorted(["viewer0", *(user.username for user in viewers), "root"])
