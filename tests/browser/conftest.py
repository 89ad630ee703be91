"""Browser fixtures: one Debian chromium per test session (through Playwright's sync API), a fresh context per test.

Without /usr/bin/chromium the browser tests skip with the reason; with CI=true its absence fails them instead.
"""

import os
from pathlib import Path

import pytest

from ..conftest import IN_CI

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

    # Playwright's sync API runs its asyncio loop in a greenlet, and from start() to stop() that loop stays
    # registered as this thread's *running* loop, even while plain test code runs. Django's async_unsafe
    # guard sees it and raises SynchronousOnlyOperation on every ORM call in the main thread: the test's
    # own create_user, the transactional_db flush, and every later test in the session, browser or not,
    # since this fixture lives until the session ends. No coroutine touches the database (test code is
    # synchronous; the live server answers in its own thread), so the guard is a false positive here.
    # It is switched off exactly while Playwright is running and restored afterwards.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            yield launched
            launched.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()
