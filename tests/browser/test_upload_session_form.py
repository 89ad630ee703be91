"""The upload form on upload sessions, in chromium: a bad metric row is marked on its row and the chosen files stay
chosen; a 200 MB file then goes up in pieces with a progress bar that moves, through a dropped connection."""

import hashlib
import re

import pytest
from django.contrib.auth import get_user_model

from apps.models.services import model_create
from apps.versions.models import ModelVersion, UploadSession

pytestmark = pytest.mark.browser

PASSWORD = "browser-test-pass-5520"
SIZE = 200 * 1024 * 1024


def test_a_form_error_keeps_the_files_and_a_200_mb_upload_shows_progress_and_survives_a_dropped_connection(live_server, transactional_db, page, tmp_path):
    user = get_user_model().objects.create_user(username="trainer", password=PASSWORD)
    model_create(name="big-model", actor=user)
    big = tmp_path / "model.safetensors"
    with open(big, "wb") as handle:
        handle.truncate(SIZE)  # sparse: 200 MB of zeros without writing them
    (tmp_path / "config.json").write_bytes(b'{"hidden_size": 8}')

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "trainer")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live_server.url + "/")
    page.goto(f"{live_server.url}/models/big-model/versions/new/")
    page.set_input_files("#id_files", [str(big), str(tmp_path / "config.json")])
    page.locator("#file-list li").nth(1).wait_for()

    metrics = page.locator("section.card", has=page.get_by_role("heading", name="Metrics", exact=True))
    metrics.locator("input[name=metric_name]").last.fill("accuracy")
    metrics.locator("input[name=metric_value]").last.fill("high")
    page.get_by_role("button", name="Register version").click()
    bad_row = page.locator("tr.row-error")
    bad_row.wait_for()
    assert "Metric 'accuracy' must be a number, got 'high'." in bad_row.inner_text()
    assert bad_row.locator("input[name=metric_value]").get_attribute("aria-invalid") == "true"
    assert page.locator(".errorbox").count() == 1
    assert page.evaluate("document.getElementById('id_files').files.length") == 2, "the chosen files are still chosen"
    assert page.locator("#file-list li").count() == 2
    assert not UploadSession.objects.exists(), "refused before any byte"

    patches, dropped = [], []

    def drop_the_third_piece(route):
        if route.request.method == "PATCH":
            patches.append(route.request.url)
            if len(patches) == 3:
                dropped.append(route.request.url)
                route.abort("connectionreset")
                return
        route.continue_()

    # Only the first three pieces pass through the route (intercepting all 200 MB would slow the browser down).
    page.route(re.compile(r".*/uploads/[0-9a-f-]+/files/\d+$"), drop_the_third_piece, times=3)
    seen = []
    page.expose_function("recordProgress", lambda value: seen.append(value))  # outlives the page, which navigates away at the end
    page.evaluate(
        """() => {
            const bar = document.getElementById('upload-progress');
            new MutationObserver(() => window.recordProgress(bar.value)).observe(bar, {attributes: true, attributeFilter: ['value']});
        }"""
    )
    bad_row.locator("input[name=metric_value]").fill("0.9")
    page.get_by_role("button", name="Register version").click()
    page.wait_for_url(re.compile(r"/models/big-model/versions/1/$"), timeout=120_000)

    assert page.locator(".messages").inner_text() == "Registered big-model v1 with 2 file(s)."
    assert any(0 < value < 100 for value in seen) and max(seen) == 100, seen
    assert len(dropped) == 1, "the third piece was lost on the way; the bytes below show the upload went on"
    version = ModelVersion.objects.get(model__name="big-model")
    assert version.metrics.get().value == 0.9
    weights = version.artifacts.get(path="model.safetensors")
    zeros = hashlib.sha256()
    block = bytes(1024 * 1024)
    for _ in range(SIZE // len(block)):
        zeros.update(block)
    assert (weights.size, weights.sha256) == (SIZE, zeros.hexdigest())
