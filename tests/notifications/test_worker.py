"""Notification emails leave from a real Celery worker (another process, so the file email backend: one file per
email, read back here), never from the request that caused them."""

import email
import email.policy
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail

from apps.approvals.services import approval_policy_update
from apps.models.permissions import Action
from apps.models.services import model_permission_grant
from apps.notifications.models import EmailStatus, Kind, Notification
from apps.notifications.services import email_preferences_update
from tests.factories import register_version
from tests.validation.workers import Worker, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def _emails(folder: Path) -> list[email.message.Message]:
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default) for path in sorted(folder.glob("*.log"))]


def test_a_new_request_is_emailed_to_its_reviewers_by_the_worker(model, owner, reviewer, make_user, api_for, tmp_path):
    folder = tmp_path / "mail"
    worker = Worker(settings.CELERY_BROKER_URL, EMAIL_URL=f"filemail:///{folder}").start()  # boots while the data is made
    try:
        scientist = make_user("scientist", email="scientist@example.com")
        for action in (Action.VIEW, Action.REGISTER, Action.REQUEST_TRANSITION):
            model_permission_grant(model=model, actor=owner, action=action, user=scientist)
        owner.email, reviewer.email = "owner@example.com", "reviewer@example.com"
        owner.save(), reviewer.save()
        email_preferences_update(user=owner, email_kinds=[])  # the owner reads notifications on the page only
        approval_policy_update(model=model, actor=owner, policies={"staging": (1, None)})
        version = register_version(model, scientist)
        url = f"/api/v1/models/{model.name}/versions/{version.number}/transitions/"
        answer = api_for(scientist).post(url, {"to_stage": "staging", "comment": "AUC +2 points"}, format="json")
        assert answer.status_code == 201, answer.content
        assert not mail.outbox  # nothing was sent in the request
        reviewers = Notification.objects.filter(kind=Kind.REVIEW_REQUESTED)
        assert {n.recipient.username: n.email_status for n in reviewers} == {"reviewer": EmailStatus.PENDING, "owner": EmailStatus.OFF}
        wait_for(lambda: reviewers.get(recipient=reviewer).email_status == EmailStatus.SENT, timeout=30)
    finally:
        log = worker.stop()
    (message,) = _emails(folder)
    assert message["To"] == "reviewer@example.com", log[-2000:]
    assert message["Subject"].strip().startswith("[Model Registry] Review request #") and "sentiment v1 → staging" in message["Subject"]
    body = message.get_content()
    assert "AUC +2 points" in body and f"{settings.SITE_URL}/approvals/{answer.json()['id']}/" in body
    assert reviewers.get(recipient=reviewer).email_attempts == 1
