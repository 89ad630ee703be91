"""The review flow in a real browser: a data scientist requests production, the team lead reviews the evidence
in the inbox and approves, the production pointer moves; the requester cannot approve their own request and an
outsider sees nothing."""

import re

import pytest
from django.contrib.auth import get_user_model

from apps.models.permissions import Action
from apps.models.services import model_create, model_permission_grant
from apps.validation.services import validation_run
from apps.versions.models import ModelVersion
from tests.factories import register_version

pytestmark = pytest.mark.browser
PASSWORD = "browser-review-pass-5521"


def log_in(page, base_url: str, username: str) -> None:
    page.context.clear_cookies()
    page.goto(base_url + "/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base_url + "/")


def test_request_review_approve_and_the_pointer_moves(live_server, transactional_db, page):
    users = {name: get_user_model().objects.create_user(username=name, password=PASSWORD) for name in ("scientist", "lead", "stranger")}
    model = model_create(name="churn", actor=users["lead"], description="Churn model")
    for action in (Action.VIEW, Action.REGISTER, Action.REQUEST_TRANSITION):
        model_permission_grant(model=model, actor=users["lead"], action=action, user=users["scientist"])
    version = register_version(model, users["scientist"], metrics={"auc": 0.91}, hyperparameters={"depth": 6})
    validation_run(job_id=version.validation_jobs.get().pk)
    base = live_server.url

    # The data scientist asks for staging (no approval needed) and then production.
    log_in(page, base, "scientist")
    page.goto(f"{base}/models/churn/versions/1/")
    page.select_option("#id_to_stage", "staging")
    page.fill("#id_justification", "Ready for shadow traffic")
    page.get_by_role("button", name="Request").click()
    page.wait_for_url(re.compile(r"/models/churn/versions/1/$"))
    assert "moved to staging" in page.content()
    page.select_option("#id_to_stage", "production")
    page.fill("#id_justification", "AUC 0.91 on the holdout; shadow traffic clean")
    page.get_by_role("button", name="Request").click()
    page.wait_for_url(re.compile(r"/approvals/\d+/$"))
    review_url = page.url
    assert page.locator("[data-status]").first.get_attribute("data-status") == "pending"
    assert page.locator("#approve-button").count() == 0, "the requester is offered no approve button"
    assert "someone else must approve" in page.content()

    # An outsider sees nothing of it.
    log_in(page, base, "stranger")
    page.goto(base + "/approvals/")
    assert "Nothing waits for your review" in page.content()
    assert page.goto(review_url).status == 404

    # The team lead finds it in the inbox, with the evidence, and approves.
    log_in(page, base, "lead")
    page.get_by_role("navigation").get_by_role("link", name="Approvals").click()
    page.wait_for_url(base + "/approvals/")
    page.get_by_role("link", name=re.compile(r"#\d+ review")).click()
    page.wait_for_url(review_url)
    for evidence in ("AUC 0.91 on the holdout", "Compared with production", "Validation", "Quality gate", "auc"):
        assert evidence in page.content(), evidence
    page.fill("#id_comment", "Evidence is convincing")
    page.locator("#approve-button").click()
    page.wait_for_url(review_url)
    assert page.locator("h1 [data-status]").get_attribute("data-status") == "applied"
    page.screenshot(path=str(live_server_screenshot_dir() / "review.png"), full_page=True)

    page.goto(f"{base}/models/churn/")
    assert page.locator(".pointer .badge").inner_text() == "v1"
    assert ModelVersion.objects.get(model=model, stage="production").number == 1


def live_server_screenshot_dir():
    from pathlib import Path
    import tempfile

    folder = Path(tempfile.gettempdir()) / "registry-browser-screenshots"
    folder.mkdir(exist_ok=True)
    return folder
