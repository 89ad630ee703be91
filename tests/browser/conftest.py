"""Browser fixtures: one Debian chromium for all browser tests (through Playwright's sync API), a fresh context per test.

The browser is package-scoped rather than session-scoped: it is launched once and shared by every test in
tests/browser, then closed before tests of other packages run (see the comment in `browser` for why).
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


@pytest.fixture(scope="package")
def browser():
    reason = chromium_missing_reason()
    if reason:
        if IN_CI:
            pytest.fail(f"CI=true but {reason}.", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs its asyncio loop in a greenlet, and from start() to stop() that loop stays
    # registered as this thread's *running* loop, even while plain test code runs. Django's async_unsafe
    # guard sees it and raises SynchronousOnlyOperation on every ORM call in the main thread (the test's
    # own create_user, the transactional_db flush after it). No coroutine touches the database (test code is
    # synchronous; the live server answers in its own thread), so the guard is a false positive here.
    # It is switched off exactly while Playwright is running and restored afterwards.
    #
    # Both the running loop and the variable must end with the browser tests, which is why this fixture is
    # package-scoped: pytest-django runs transactional tests (these) after the plain database tests, so a
    # session-scoped browser would stay alive while later tests run. Their ORM calls would then need the
    # guard off too, and subprocesses they start would inherit the variable (`manage.py check --deploy`
    # in tests/test_project.py then fails with async.E001, "You should not set the DJANGO_ALLOW_ASYNC_UNSAFE
    # environment variable in deployment").
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
