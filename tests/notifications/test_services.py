"""Who is notified of what, written with the event; emails sent by `email_attempt` through Django's email framework."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from apps.versions.aliases import PRODUCTION_ALIAS
from apps.approvals.services import (
    alias_rollback,
    alias_set,
    approval_policy_update,
    transition_request_approve,
    transition_request_create,
    transition_request_reject,
    transition_request_withdraw,
)
from apps.models.permissions import Action
from apps.models.services import model_permission_grant
from apps.notifications.models import EmailStatus, Kind, Notification
from apps.notifications.services import email_attempt, email_preferences_update, email_sweep, notification_mark_read
from apps.notifications.tasks import sweep_notification_emails
from apps.validation.services import validation_run
from tests.factories import promote, register_version
from tests.helpers import pending_production_request
from tests.nodes import ROOT
from tests.validation.workers import free_port

pytestmark = pytest.mark.django_db


def _kinds(user) -> list[str]:
    return list(Notification.objects.filter(recipient=user).order_by("created_at", "id").values_list("kind", flat=True))


@pytest.fixture
def scientist(make_user, model, owner):
    user = make_user("scientist", email="scientist@example.com")
    for action in (Action.VIEW, Action.REGISTER, Action.REQUEST_TRANSITION):
        model_permission_grant(model=model, actor=owner, action=action, user=user)
    return user


def test_a_new_request_notifies_those_who_may_approve_it_but_not_the_requester(model, owner, reviewer, outsider, scientist):
    transition_request = pending_production_request(model, scientist)
    (notification,) = Notification.objects.filter(kind=Kind.REVIEW_REQUESTED, recipient=reviewer)
    assert notification.url == f"/approvals/{transition_request.pk}/" and "sentiment v1 → production" in notification.title
    assert notification.body == "Ship: +2 points" and notification.actor_name == "scientist"
    # the owner manages the model and holds approve too; the requester and the outsider hear nothing
    assert Kind.REVIEW_REQUESTED in _kinds(owner)
    assert _kinds(scientist) == [] and _kinds(outsider) == []


def test_moves_that_need_no_review_notify_nobody(model, owner, reviewer, scientist):
    version = register_version(model, scientist)
    validation_run(job_id=version.validation_jobs.get().pk)
    transition_request_create(version=version, to_stage="staging", actor=scientist, justification="shadow traffic")
    assert not Notification.objects.exists()


def test_the_requester_hears_of_approval_and_rejection_and_reviewers_of_a_withdrawal(model, owner, reviewer, scientist):
    first = pending_production_request(model, scientist)
    transition_request_approve(transition_request=first, actor=reviewer, comment="convincing")
    approved = Notification.objects.get(recipient=scientist, kind=Kind.REQUEST_APPROVED)
    assert "the move was applied" in approved.title and approved.body == "convincing" and approved.actor_name == "reviewer"

    second = pending_production_request(model, scientist)
    transition_request_reject(transition_request=second, actor=reviewer, comment="wrong split")
    assert Notification.objects.get(recipient=scientist, kind=Kind.REQUEST_REJECTED).body == "wrong split"

    third = pending_production_request(model, scientist)
    transition_request_withdraw(transition_request=third, actor=scientist)
    withdrawn = Notification.objects.filter(kind=Kind.REQUEST_WITHDRAWN)
    assert set(withdrawn.values_list("recipient__username", flat=True)) == {"owner", "reviewer"}
    assert Kind.REQUEST_WITHDRAWN not in _kinds(scientist)


def test_the_requester_hears_when_production_moves_and_their_approvals_go_stale(model, owner, reviewer, scientist, make_user):
    second = make_user("second")
    for action in (Action.VIEW, Action.APPROVE_TRANSITION):
        model_permission_grant(model=model, actor=owner, action=action, user=second)
    approval_policy_update(model=model, actor=owner, policies={"production": (2, None)})
    waiting = pending_production_request(model, scientist)
    transition_request_approve(transition_request=waiting, actor=reviewer)  # 1 of 2, given while nothing is in production
    winner = pending_production_request(model, owner)
    transition_request_approve(transition_request=winner, actor=reviewer)
    transition_request_approve(transition_request=winner, actor=second)  # production moves to v2
    (stale,) = Notification.objects.filter(kind=Kind.REQUEST_STALE)
    assert stale.recipient == scientist and stale.url == f"/approvals/{waiting.pk}/"
    assert not Notification.objects.filter(kind=Kind.REQUEST_STALE, recipient=owner).exists()


def test_managers_hear_of_failed_validation_and_of_a_rollback(model, owner, reviewer, scientist):
    broken = register_version(model, scientist, dependencies={"requirements": "not a valid line!!\n"})
    validation_run(job_id=broken.validation_jobs.get().pk)
    (failed,) = Notification.objects.filter(kind=Kind.VALIDATION_FAILED)
    assert failed.recipient == owner and "v1" in failed.title and "dependencies" in failed.body

    for _ in range(2):
        promote(register_version(model, scientist), requester=scientist, approver=reviewer)
    alias_rollback(model=model, alias=PRODUCTION_ALIAS, actor=reviewer, reason="error rate doubled")
    (rolled_back,) = Notification.objects.filter(kind=Kind.ROLLED_BACK)
    assert rolled_back.recipient == owner and rolled_back.title == "reviewer rolled sentiment production back from v3 to v2"
    assert rolled_back.body == "error rate doubled" and rolled_back.url == "/models/sentiment/history/"


def test_managers_hear_of_an_alias_rolled_back(model, owner, reviewer):
    first, second = register_version(model, owner), register_version(model, owner)
    alias_set(model=model, alias="champion", version=first, actor=owner)
    alias_set(model=model, alias="champion", version=second, actor=owner)
    alias_rollback(model=model, alias="champion", actor=reviewer, reason="v2 regressed")
    (rolled_back,) = Notification.objects.filter(kind=Kind.ROLLED_BACK)
    assert rolled_back.recipient == owner and rolled_back.title == "reviewer rolled sentiment @champion back from v2 to v1"
    assert rolled_back.url == "/models/sentiment/aliases/champion/"


def test_emails_follow_each_users_settings(model, owner, reviewer, make_user, scientist):
    owner.email, reviewer.email = "owner@example.com", "reviewer@example.com"
    owner.save(), reviewer.save()
    email_preferences_update(user=reviewer, email_kinds=[kind for kind in Kind.values if kind != Kind.REVIEW_REQUESTED])
    pending_production_request(model, scientist)
    rows = {n.recipient.username: n for n in Notification.objects.filter(kind=Kind.REVIEW_REQUESTED)}
    assert rows["owner"].email_status == EmailStatus.PENDING
    assert rows["reviewer"].email_status == EmailStatus.OFF  # still on the page, not emailed

    assert email_attempt(notification_id=rows["reviewer"].pk) is None  # nothing to send
    sent = email_attempt(notification_id=rows["owner"].pk)
    assert sent.email_status == EmailStatus.SENT and sent.email_attempts == 1
    (message,) = mail.outbox
    assert message.to == ["owner@example.com"] and message.subject.startswith("[Model Registry] Review request #")
    assert "Ship: +2 points" in message.body and "http://127.0.0.1:8000/approvals/" in message.body
    assert "/notifications/settings/" in message.body
    assert email_attempt(notification_id=rows["owner"].pk) is None  # a duplicate message sends nothing


def test_a_user_without_an_address_gets_no_email(model, owner, reviewer, scientist):
    pending_production_request(model, scientist)
    assert set(Notification.objects.values_list("email_status", flat=True)) == {EmailStatus.OFF}


def test_a_failing_mail_server_is_retried_later(model, owner, reviewer, scientist, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2  # nothing listens there
    owner.email = "owner@example.com"
    owner.save()
    pending_production_request(model, scientist)
    notification = Notification.objects.get(recipient=owner, kind=Kind.REVIEW_REQUESTED)
    failed = email_attempt(notification_id=notification.pk)
    assert failed.email_status == EmailStatus.FAILED and failed.email_attempts == 1 and "Connection refused" in failed.email_error
    assert failed.email_next_attempt_at > notification.created_at
    assert email_attempt(notification_id=notification.pk) is None  # not due yet


@pytest.mark.redis
def test_the_sweep_resends_emails_the_broker_never_got_and_takes_back_stuck_ones(model, owner, reviewer, scientist):
    owner.email = "owner@example.com"
    owner.save()
    pending_production_request(model, scientist)  # this test's transaction never commits: no message was sent
    notification = Notification.objects.get(recipient=owner, kind=Kind.REVIEW_REQUESTED)
    assert notification.email_message_due_at is None
    assert email_sweep() == {"reclaimed": 0, "sent": 1}  # to the real broker
    notification.refresh_from_db()
    assert notification.email_message_due_at is not None
    assert email_sweep()["sent"] == 0  # handed over a moment ago: not again yet
    stuck = timezone.now() - timedelta(minutes=10)
    Notification.objects.filter(pk=notification.pk).update(email_status=EmailStatus.SENDING, email_claimed_at=stuck)  # its worker died
    assert email_sweep() == {"reclaimed": 1, "sent": 1}
    notification.refresh_from_db()
    assert notification.email_status == EmailStatus.FAILED and "worker stopped" in notification.email_error


def test_marking_read_touches_only_the_users_own(model, owner, reviewer, scientist):
    pending_production_request(model, scientist)
    mine = Notification.objects.get(recipient=reviewer)
    theirs = Notification.objects.get(recipient=owner)
    assert notification_mark_read(user=reviewer, notification_ids=[mine.pk, theirs.pk]) == 1
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_a_failing_mail_server_is_given_up_after_the_attempts_the_settings_allow(model, owner, reviewer, scientist, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2  # nothing listens there
    settings.NOTIFICATION_EMAIL_MAX_ATTEMPTS, settings.NOTIFICATION_EMAIL_RETRY_BASE_SECONDS = 2, 7
    owner.email = "owner@example.com"
    owner.save()
    pending_production_request(model, scientist)
    notification = Notification.objects.get(recipient=owner, kind=Kind.REVIEW_REQUESTED)
    first = email_attempt(notification_id=notification.pk)
    assert first.email_status == EmailStatus.FAILED
    assert (first.email_next_attempt_at - timezone.now()).total_seconds() == pytest.approx(7, abs=2)
    Notification.objects.filter(pk=notification.pk).update(email_next_attempt_at=timezone.now())
    second = email_attempt(notification_id=notification.pk)
    assert second.email_status == EmailStatus.GAVE_UP and second.email_attempts == 2


@pytest.mark.redis
def test_the_sweep_gives_up_on_an_email_whose_workers_keep_dying(model, owner, reviewer, scientist, settings):
    settings.NOTIFICATION_EMAIL_MAX_ATTEMPTS = 3
    owner.email = "owner@example.com"
    owner.save()
    pending_production_request(model, scientist)
    notification = Notification.objects.get(recipient=owner, kind=Kind.REVIEW_REQUESTED)
    stuck = timezone.now() - timedelta(minutes=10)
    Notification.objects.filter(pk=notification.pk).update(email_status=EmailStatus.SENDING, email_claimed_at=stuck, email_attempts=3)
    assert sweep_notification_emails() == {"reclaimed": 1, "sent": 0}  # the beat task: given up, not sent a fourth time
    notification.refresh_from_db()
    assert notification.email_status == EmailStatus.GAVE_UP and "worker stopped" in notification.email_error
    assert email_attempt(notification_id=notification.pk) is None


@pytest.mark.parametrize(
    "variables, message",
    [
        ({"NOTIFICATION_EMAIL_MAX_ATTEMPTS": "0"}, "NOTIFICATION_EMAIL_MAX_ATTEMPTS must be a positive whole number"),
        ({"NOTIFICATION_EMAIL_RETRY_BASE_SECONDS": "ten"}, "NOTIFICATION_EMAIL_RETRY_BASE_SECONDS must be a positive whole number"),
        ({"EMAIL_TIMEOUT_SECONDS": "120"}, "EMAIL_TIMEOUT_SECONDS (120) must be shorter than NOTIFICATION_EMAIL_LEASE_SECONDS (120)"),
    ],
)
def test_a_bad_email_retry_setting_stops_start_up_naming_the_variable(variables, message):
    finished = subprocess.run(
        [sys.executable, "-c", "import registry_site.settings.base"], cwd=ROOT, env={**os.environ, **variables}, capture_output=True, text=True, timeout=60
    )
    assert finished.returncode != 0 and f"ImproperlyConfigured: {message}" in finished.stderr
