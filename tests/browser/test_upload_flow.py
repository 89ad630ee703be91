"""The upload flow end to end in a real browser: log in, create a model, upload files and a folder, download back.

Runs against pytest-django's live server (a real HTTP server in a thread) so the page's upload script,
the multipart parser and the streaming download are all exercised together.
"""

import hashlib
import os
import re

import pytest
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.browser

PASSWORD = "browser-test-pass-7419"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def artifact_paths(page) -> list[str]:
    """The paths listed in the version page's artifacts table."""
    table = page.locator("section.card", has=page.get_by_role("heading", name="Artifacts")).locator("tbody a")
    return table.all_inner_texts()


def test_upload_files_and_folder_then_download(live_server, transactional_db, page, tmp_path):
    get_user_model().objects.create_user(username="uploader", password=PASSWORD)
    name = "browser-sentiment"

    # Log in through the login form (every page but login needs a session).
    page.goto(live_server.url + "/")
    page.wait_for_url(re.compile(r"/accounts/login/"))
    page.fill("#id_username", "uploader")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live_server.url + "/")
    assert page.locator(".topbar .who").inner_text() == "uploader"

    # Create a model through the "New model" form.
    page.get_by_role("navigation").get_by_role("link", name="New model").click()
    page.wait_for_url(re.compile(r"/models/new/$"))
    page.fill("#id_name", name)
    page.fill("#id_description", "A model created by the **browser** test.")
    page.get_by_role("button", name="Create model").click()
    page.wait_for_url(re.compile(rf"/models/{name}/$"))

    # From the model page, upload two files plus a metric row.
    page.goto(f"{live_server.url}/models/{name}/")
    page.get_by_role("link", name="+ Upload version").click()
    page.wait_for_url(re.compile(rf"/models/{name}/versions/new/$"))

    config = b'{"hidden_size": 8, "num_labels": 2}'
    weights = os.urandom(4096) + b"\x00\x01\x02\xff"
    (tmp_path / "config.json").write_bytes(config)
    (tmp_path / "weights.bin").write_bytes(weights)
    page.set_input_files("#id_files", [str(tmp_path / "config.json"), str(tmp_path / "weights.bin")])
    listed = page.locator("#file-list li")
    listed.first.wait_for()
    assert listed.count() == 2, listed.all_inner_texts()

    metrics = page.locator("section.card", has=page.get_by_role("heading", name="Metrics", exact=True))
    metrics.get_by_role("button", name="+ Row").click()
    assert metrics.locator("input[name=metric_name]").count() == 2
    metrics.locator("input[name=metric_name]").last.fill("accuracy")
    metrics.locator("input[name=metric_value]").last.fill("0.9")

    page.get_by_role("button", name="Register version").click()
    page.wait_for_url(re.compile(rf"/models/{name}/versions/1/$"))
    # The upload script shows the page its request landed on, so the one-time success message survives.
    assert page.locator(".messages").inner_text() == f"Registered {name} v1 with 2 file(s)."
    assert sorted(artifact_paths(page)) == ["config.json", "weights.bin"]
    metric_rows = page.locator("section.card", has=page.get_by_role("heading", name="Metrics", exact=True)).locator("tbody tr")
    assert metric_rows.count() == 1
    assert metric_rows.first.locator("th").inner_text() == "accuracy"
    assert float(metric_rows.first.locator("td").inner_text()) == 0.9

    # The models list shows the model with v1 as its latest version.
    page.get_by_role("navigation").get_by_role("link", name="Models").click()
    page.wait_for_url(live_server.url + "/")
    row = page.locator("table.table tbody tr", has=page.get_by_role("link", name=name, exact=True))
    assert row.count() == 1
    assert row.locator("td").nth(4).inner_text().strip() == "v1"

    # Download one artifact through its link: the bytes come back unchanged.
    row.get_by_role("link", name="v1").click()
    page.wait_for_url(re.compile(rf"/models/{name}/versions/1/$"))
    with page.expect_download() as download_info:
        page.get_by_role("link", name="weights.bin", exact=True).click()
    download = download_info.value
    assert download.suggested_filename == "weights.bin"
    download.save_as(tmp_path / "downloaded.bin")
    assert sha256((tmp_path / "downloaded.bin").read_bytes()) == sha256(weights)

    # A second version from a folder: relative paths inside the folder are kept.
    folder = tmp_path / "bert"
    (folder / "tokenizer").mkdir(parents=True)
    vocab = b"[PAD]\n[UNK]\nthe\nmovie\n"
    (folder / "tokenizer" / "vocab.txt").write_bytes(vocab)
    (folder / "config.json").write_bytes(b'{"hidden_size": 16}')
    page.goto(f"{live_server.url}/models/{name}/versions/new/")
    from playwright.sync_api import Error as PlaywrightError

    try:
        page.set_input_files("#id_folder", str(folder))
    except PlaywrightError as exc:
        pytest.skip(f"This Playwright/chromium pair cannot set a directory on a webkitdirectory input: {exc}")
    listed = page.locator("#file-list li")
    listed.first.wait_for()
    assert sorted(text.split(" (")[0] for text in listed.all_inner_texts()) == ["config.json", "tokenizer/vocab.txt"]
    page.get_by_role("button", name="Register version").click()
    page.wait_for_url(re.compile(rf"/models/{name}/versions/2/$"))
    assert page.locator(".messages").inner_text() == f"Registered {name} v2 with 2 file(s)."
    assert sorted(artifact_paths(page)) == ["config.json", "tokenizer/vocab.txt"]
    with page.expect_download() as download_info:
        page.get_by_role("link", name="tokenizer/vocab.txt", exact=True).click()
    download_info.value.save_as(tmp_path / "vocab.txt")
    assert sha256((tmp_path / "vocab.txt").read_bytes()) == sha256(vocab)
