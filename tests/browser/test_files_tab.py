"""The files tab in a real browser: walk into a folder, preview a JSON file and a safetensors header, copy a snippet."""

import pytest
from django.contrib.auth import get_user_model

from apps.models.services import model_create
from tests.browser.helpers import log_in
from tests.factories import register_version
from tests.helpers import safetensors

pytestmark = pytest.mark.browser
PASSWORD = "browser-files-pass-7731"


def test_browse_folders_preview_files_and_copy_the_pull_command(live_server, transactional_db, page):
    user = get_user_model().objects.create_user(username="scientist", password=PASSWORD)
    model = model_create(name="tagger", actor=user)
    register_version(model, user, files={
        "config.json": b'{"architectures": ["BertForTokenClassification"], "note": "<b>not bold</b>"}',
        "weights/model.safetensors": safetensors({"classifier.weight": ("F32", [9, 4]), "classifier.bias": ("F32", [9])}),
    })
    base = live_server.url
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    log_in(page, base, "scientist", PASSWORD)

    page.goto(f"{base}/models/tagger/versions/1/")
    page.get_by_role("link", name="Files", exact=True).click()
    page.get_by_role("link", name="config.json", exact=True).click()
    preview = page.locator("#preview-text")
    assert '"architectures": [' in preview.inner_text() and "<b>not bold</b>" in preview.inner_text()
    assert page.locator("#preview b").count() == 0  # shown as text, not markup

    page.get_by_role("link", name="weights/").click()
    page.get_by_role("link", name="model.safetensors", exact=True).click()
    rows = page.locator("#tensor-table tbody tr")
    assert rows.count() == 2
    assert rows.first.locator("td").all_inner_texts() == ["classifier.weight", "F32", "[9, 4]"]

    page.locator('button[data-copy="snippet-cli"]').click()
    page.wait_for_function("() => document.querySelector('button[data-copy=\"snippet-cli\"]').textContent === 'Copied'")
    assert "model-registry pull tagger/1" in page.evaluate("() => navigator.clipboard.readText()")
