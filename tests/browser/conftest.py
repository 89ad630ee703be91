"""Browser fixtures: one Debian chromium per test session (through Playwright's sync API), a fresh context per test.

Without /usr/bin/chromium the browser tests skip with the reason; with CI=true its absence fails them instead.
"""

import os
from pathlib import Path

import pytest

# Playwright's sync API drives its asyncio loop from a greenlet, and the loop stays registered as the
# thread's *running* loop while the test's own code runs. Django's async_unsafe guard sees that running
# loop and raises SynchronousOnlyOperation for every ORM call the test makes (creating the user, looking
# rows up). No coroutine ever touches the database here: the test code is plain synchronous code, and the
# live server answers requests in its own thread. So the guard is a false positive and is switched off.
# It must be set before any ORM call, hence at import time rather than inside a fixture.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from ..conftest import IN_CI  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_missing_reason() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium to run the browser tests)"
    return None


@pytest.fixture(scope="session")
def browser():
    reason = chromium_missing_reason()
    if reason:
        if IN_CI:
            pytest.fail(f"CI=true but {reason}.", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()
