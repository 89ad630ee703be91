"""The approvals inbox in a real browser: filter by model and target stage, switch to my requests, open a review that
flags the missing evaluation dataset against production."""

import pytest
from django.contrib.auth import get_user_model

from apps.models.permissions import Action
from apps.models.services import model_create, model_permission_grant
from tests.browser.helpers import log_in
from tests.factories import promote, register_version
from tests.helpers import pending_production_request

pytestmark = pytest.mark.browser
PASSWORD = "browser-inbox-pass-4410"


def test_filter_the_inbox_and_open_a_review_that_flags_the_evaluation_data(live_server, transactional_db, page):
    lead, scientist = (get_user_model().objects.create_user(username=name, password=PASSWORD) for name in ("lead", "scientist"))
    models = {}
    for name in ("sentiment", "ranker"):
        models[name] = model_create(name=name, actor=scientist)
        for action in (Action.VIEW, Action.APPROVE_TRANSITION, Action.REQUEST_TRANSITION, Action.REGISTER):
            model_permission_grant(model=models[name], actor=scientist, action=action, user=lead)
    evaluation = {"name": "imdb-reviews-test", "uri": "s3://data/imdb/test", "role": "evaluation"}
    promote(register_version(models["sentiment"], scientist, datasets=[evaluation]), requester=scientist, approver=lead)
    candidate = pending_production_request(models["sentiment"], scientist)
    pending_production_request(models["ranker"], scientist)
    own = register_version(models["ranker"], lead)
    base = live_server.url
    log_in(page, base, "lead", PASSWORD)

    page.goto(base + "/approvals/")
    rows = page.locator("#inbox-table tbody tr[data-request]")
    assert rows.count() == 2
    page.fill("#inbox-model", "sentiment")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**model=sentiment*")
    assert rows.count() == 1 and rows.first.get_attribute("data-request") == str(candidate.pk)
    page.select_option("#id_stage", "staging")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**stage=staging*")
    assert rows.count() == 0 and "with these filters" in page.locator("#inbox-table").inner_text()

    page.goto(base + "/approvals/")
    page.select_option("#id_view", "mine")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**view=mine*")
    assert rows.count() == 0  # the lead asked for nothing yet
    page.goto(f"{base}/models/ranker/versions/{own.number}/")
    page.select_option("#id_to_stage", "archived")
    page.fill("#id_justification", "not needed")
    page.get_by_role("button", name="Request").click()
    page.goto(base + "/approvals/?view=mine")
    assert rows.count() == 1 and "applied" in rows.first.inner_text()

    page.goto(base + "/approvals/")
    page.locator(f'tr[data-request="{candidate.pk}"] a', has_text="review").click()
    page.wait_for_url(f"**/approvals/{candidate.pk}/")
    assert "records no evaluation dataset; production (v1) was evaluated on imdb-reviews-test" in page.locator("#data-changes").inner_text()
