"""The versions table in a real browser: choose a metric column, sort by it by clicking its header (the database
sorts, so the order holds across pages), then tick versions and archive them after a confirmation."""

import pytest
from django.contrib.auth import get_user_model

from apps.models.services import model_create
from apps.versions.models import ModelVersion
from tests.browser.helpers import log_in
from tests.factories import register_version

pytestmark = pytest.mark.browser
PASSWORD = "browser-tables-pass-5120"


def test_sort_the_versions_table_by_a_chosen_metric_and_archive_two(live_server, transactional_db, page):
    lead = get_user_model().objects.create_user(username="lead", password=PASSWORD)
    model = model_create(name="ranker", actor=lead)
    for accuracy, f1 in ((0.81, 0.40), (0.93, 0.61), (0.77, 0.72), (0.88, 0.55)):
        register_version(model, lead, metrics={"accuracy": accuracy, "f1": f1, "loss": 1 - accuracy})
    register_version(model, lead, metrics={"accuracy": 0.5})  # no f1: sorts last either way
    base = live_server.url
    log_in(page, base, "lead", PASSWORD)

    page.goto(f"{base}/models/ranker/?metrics=accuracy")
    rows = page.locator("#versions-table tbody tr")
    assert page.locator("#versions-table thead th").all_inner_texts()[4].lower().startswith("accuracy")
    page.locator(".metric-picker summary").click()
    page.get_by_label("f1").check()
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**metrics=*f1*")
    page.get_by_title("Sort descending by f1").click()
    page.wait_for_url("**sort=-metric.f1*")
    assert [text.strip() for text in rows.locator("td:nth-child(2)").all_inner_texts()] == ["v3", "v2", "v4", "v1", "v5"]
    assert page.locator("th[aria-sort=descending]").inner_text().lower().startswith("f1")
    page.get_by_title("Sort ascending by f1").click()
    page.wait_for_url("**sort=metric.f1*")
    assert [text.strip() for text in rows.locator("td:nth-child(2)").all_inner_texts()] == ["v1", "v4", "v2", "v3", "v5"]

    # The choice is remembered: the model page without ?metrics= shows the same columns.
    page.goto(f"{base}/models/ranker/")
    headers = " ".join(page.locator("#versions-table thead th").all_inner_texts()).lower()
    assert "accuracy" in headers and "f1" in headers and "loss" not in headers

    page.get_by_label("Compare v1").check()
    page.get_by_label("Compare v5").check()
    page.get_by_role("button", name="Archive selected…").click()
    page.wait_for_url("**/versions/archive-selected/?*")
    assert page.locator("#archive-plan tbody tr").count() == 2
    page.get_by_label("Why archive them").fill("Superseded by v2")
    page.get_by_role("button", name="Archive 2 versions").click()
    page.wait_for_url(f"{base}/models/ranker/")
    assert "Archived: v5, v1." in page.locator(".messages").inner_text()
    assert set(ModelVersion.objects.filter(stage="archived").values_list("number", flat=True)) == {1, 5}
