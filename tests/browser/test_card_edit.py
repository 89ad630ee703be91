"""Editing a model card in a real browser: the preview follows the Markdown as it is typed (server-rendered, sanitized),
and the saved card shows on the model page with its fields and the production version's evaluation results."""

import pytest
from django.contrib.auth import get_user_model

from apps.models.permissions import Action
from apps.models.services import model_create, model_permission_grant
from tests.browser.helpers import log_in
from tests.factories import promote, register_version

pytestmark = pytest.mark.browser
PASSWORD = "browser-card-pass-2290"


def test_edit_a_model_card_with_live_preview(live_server, transactional_db, page):
    lead, scientist = (get_user_model().objects.create_user(username=name, password=PASSWORD) for name in ("lead", "scientist"))
    model = model_create(name="summarizer", actor=lead)
    for action in (Action.VIEW, Action.REQUEST_TRANSITION, Action.APPROVE_TRANSITION):
        model_permission_grant(model=model, actor=lead, action=action, user=scientist)
    promote(register_version(model, lead, metrics={"rouge_l": 0.412}), requester=lead, approver=scientist)
    base = live_server.url
    log_in(page, base, "lead", PASSWORD)

    page.goto(f"{base}/models/summarizer/")
    page.get_by_role("link", name="Edit card").click()
    page.wait_for_url("**/card/edit/")
    page.get_by_label("License").fill("apache-2.0")
    page.get_by_label("Intended use").fill("Summaries of English news articles.")
    page.get_by_label("Limitations").fill("Hallucinates names on long inputs.")
    body = page.get_by_label("Card (Markdown)")
    body.fill("")
    body.press_sequentially("## Summarizer\n\nTrained on **CNN/DailyMail**. <img src=x onerror=alert(1)>", delay=5)
    preview = page.locator("#card-preview")
    preview.locator("h2", has_text="Summarizer").wait_for()
    assert preview.locator("strong").inner_text() == "CNN/DailyMail"
    assert preview.locator("img").count() == 0 and "<img src=x" in preview.inner_text()  # shown as text
    assert "rouge_l" in page.locator(".eval-results").inner_text()
    page.get_by_role("button", name="Save card").click()
    page.wait_for_url(f"{base}/models/summarizer/")
    card = page.locator("#model-card")
    assert card.locator('[data-field="license"]').inner_text() == "apache-2.0"
    assert card.locator("h2", has_text="Summarizer").count() == 1
    assert "0.412" in card.locator(".eval-results").inner_text()
