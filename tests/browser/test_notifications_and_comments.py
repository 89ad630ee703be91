"""Notifications and comments in a real browser: the team lead sees the unread badge for a request waiting for review,
opens it from the notifications page and comments with an @mention; the data scientist mentioned sees the badge,
finds the mention and marks everything read; an outsider mentioned hears nothing."""

import re

import pytest
from django.contrib.auth import get_user_model

from apps.approvals.services import transition_request_create
from apps.models.permissions import Action
from apps.models.services import model_create, model_permission_grant
from apps.notifications.models import Notification
from apps.validation.services import validation_run
from tests.browser.helpers import log_in
from tests.factories import register_version

pytestmark = pytest.mark.browser
PASSWORD = "browser-notify-pass-8812"


def badge(page) -> str | None:
    count = page.locator("#nav-notifications .badge")
    return count.get_attribute("data-unread") if count.count() else None


def test_the_unread_badge_the_notifications_page_and_a_comment_with_a_mention(live_server, transactional_db, page):
    users = {name: get_user_model().objects.create_user(username=name, password=PASSWORD) for name in ("scientist", "lead", "stranger")}
    model = model_create(name="churn", actor=users["lead"], description="Churn model")
    for action in (Action.VIEW, Action.REGISTER, Action.REQUEST_TRANSITION):
        model_permission_grant(model=model, actor=users["lead"], action=action, user=users["scientist"])
    version = register_version(model, users["scientist"], metrics={"auc": 0.91})
    validation_run(job_id=version.validation_jobs.get().pk)
    transition_request_create(version=version, to_stage="staging", actor=users["scientist"], justification="shadow traffic")
    transition = transition_request_create(version=version, to_stage="production", actor=users["scientist"], justification="AUC 0.91 on the holdout")
    base = live_server.url

    # The lead sees one unread notification in the bar and opens the request from the notifications page.
    log_in(page, base, "lead", PASSWORD)
    assert badge(page) == "1"
    page.locator("#nav-notifications").click()
    page.wait_for_url(base + "/notifications/")
    row = page.locator("#notifications tbody tr.unread")
    assert row.count() == 1 and "asked by scientist" in row.inner_text() and "AUC 0.91 on the holdout" in row.inner_text()
    row.get_by_role("link").click()
    page.wait_for_url(f"{base}/approvals/{transition.pk}/")

    # A comment in Markdown, mentioning the requester and an outsider.
    page.fill("#id_body", "Which **split** is the holdout, @scientist? (cc @stranger)")
    page.get_by_role("button", name="Comment").click()
    page.wait_for_url(re.compile(rf"/approvals/{transition.pk}/#comment-\d+$"))
    comment = page.locator("article.comment").last
    assert comment.locator(".comment-body strong").inner_text() == "split" and "lead" in comment.inner_text()
    page.goto(base + "/notifications/")
    page.get_by_role("button", name="Mark all read").click()
    page.wait_for_url(base + "/notifications/")
    assert badge(page) is None and page.locator("#notifications tbody tr.unread").count() == 0

    # The scientist is told of the mention; the outsider hears nothing.
    log_in(page, base, "scientist", PASSWORD)
    assert badge(page) == "1"
    page.goto(base + "/notifications/?q=mentioned")
    mention = page.locator("#notifications tbody tr.unread")
    assert mention.count() == 1 and f"lead mentioned you on request #{transition.pk}" in mention.inner_text()
    mention.get_by_role("button", name=re.compile("Mark read")).click()
    page.wait_for_url(base + "/notifications/?q=mentioned")
    assert badge(page) is None
    assert not Notification.objects.filter(recipient=users["stranger"]).exists()
    log_in(page, base, "stranger", PASSWORD)
    assert badge(page) is None
