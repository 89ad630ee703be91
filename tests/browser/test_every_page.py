"""Every page of the dashboard in one browser session: at a phone's width (390 px) nothing overflows sideways, and
axe-core (vendored in static/vendor/axe-core) finds no serious or critical accessibility violation.

The page list is built from the URLconf: each named route outside the API and the admin is filled with the seeded
objects and fetched; what answers a whole HTML document is checked, POST-only actions (405), file downloads and htmx
fragments are named in the summary and left out. A route whose parameters the test cannot fill fails the test, so a
new page is checked from the day it is added. The admin index, the API docs (Swagger UI and ReDoc) and the 403/404 pages are added by hand.
Set EVERY_PAGE_REPORT=<file> to keep the page list and axe's findings as JSON.
"""

import io
import json
import os
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from apps.approvals.models import RequestStatus, TransitionRequest
from apps.approvals.services import transition_request_create
from apps.accounts.services import api_token_create
from apps.comments.services import comment_create
from apps.events.models import Delivery, EventType
from apps.events.services import webhook_create
from apps.lineage.models import Dataset
from apps.models.models import RegisteredModel
from apps.signing.keys import create_key_file
from apps.versions.lifecycle import Stage
from tests.factories import register_version

pytestmark = pytest.mark.browser

AXE = Path(settings.BASE_DIR) / "static" / "vendor" / "axe-core" / "axe.min.js"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
MODEL = "sentiment-classifier"
PASSWORDS = {"admin": "admin-demo-pass", "scientist": "scientist-demo-pass"}  # seed_demo's published demo logins
NOT_PAGES = {"accounts:logout"}  # POST only, and answering it would end the session the walk runs in
BLOCKING_IMPACTS = ("serious", "critical")
DARK_PAGES = ("models:list", "models:detail", "versions:detail", "approvals:review", "compare:page", "versions:upload", "versions:files", "cards:model")

OVERFLOW_JS = """() => ({
  page: document.documentElement.scrollWidth,
  viewport: window.innerWidth,
  widest: [...document.querySelectorAll('body *')]
    .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1 && !el.closest('.scroll'))
    .slice(0, 3).map((el) => el.tagName.toLowerCase() + (el.className && typeof el.className === 'string' ? '.' + el.className.split(' ').join('.') : '')),
})"""
# Content cut without a hint: a box whose content is wider than the box, and that either clips it or scrolls without
# showing the "scroll →" cue (static/js/app.js marks such a box .overflowing; the CSS draws the cue as its ::before).
CUT_JS = """() => [...document.querySelectorAll('main *')].filter((el) => {
  const style = getComputedStyle(el);
  if (el.scrollWidth <= el.clientWidth + 1 || style.display === 'inline' || el.clientWidth <= 2) return false;  // 1 px: for screen readers
  if (el.matches('input, select, textarea, button')) return false;  // a control scrolls its own text
  if (['auto', 'scroll'].includes(style.overflowX)) {
    const cue = getComputedStyle(el, '::before');
    return !el.classList.contains('overflowing') || !cue.content.includes('scroll') || cue.display === 'none';
  }
  return ['hidden', 'clip'].includes(style.overflowX);
}).map((el) => el.tagName.toLowerCase() + '.' + [...el.classList].join('.'))"""
AXE_JS = """async () => {
  const results = await axe.run(document, {resultTypes: ['violations']});
  return results.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.slice(0, 3).map((n) => n.target.join(' '))}));
}"""


def seed() -> dict[str, object]:
    """The demo data (versions in draft, staging with a pending request and production) plus an archived version,
    a webhook with a delivery in its log (the version archived), and the objects the routes' parameters need."""
    call_command("seed_demo", "--i-know-this-sets-known-passwords", stdout=io.StringIO())
    model = RegisteredModel.objects.get(name=MODEL)
    admin, scientist = (get_user_model().objects.get(username=name) for name in ("admin", "scientist"))
    # A receiver on the discard port: no worker runs here, so its delivery stays queued in the log.
    webhook, _secret = webhook_create(model=model, actor=admin, url="http://127.0.0.1:9/hooks/registry", event_types=[EventType.VERSION_STAGE_CHANGED])
    archived = register_version(model, scientist, metrics={"accuracy": 0.7}, description="A run that went nowhere.")
    transition_request_create(version=archived, to_stage=Stage.ARCHIVED, actor=scientist, justification="Superseded")  # applied at once
    token, _secret = api_token_create(user=admin, name="deploy pipeline", models=[model])
    pending = TransitionRequest.objects.filter(version__model=model, status=RequestStatus.PENDING).order_by("-pk").first()
    assert pending is not None, "seed_demo leaves a request pending"
    production = model.versions.get(stage=Stage.PRODUCTION)
    comment = comment_create(actor=admin, body="**Checked** the evaluation split, @scientist.", version=production)
    comment_create(actor=scientist, body="Could you look at the `imdb` numbers, @admin?", transition_request=pending)  # admin: 1 unread
    return {
        "name": MODEL,
        "number": production.number,
        # `pk` names a different object in each app
        "pk": {"approvals": pending.pk, "lineage": Dataset.objects.order_by("pk").first().pk, "accounts": token.pk, "comments": comment.pk},
        "webhook_id": webhook.pk,
        "delivery_id": Delivery.objects.filter(webhook=webhook).get().pk,
        "path": "config.json",
        "session_id": "00000000-0000-4000-8000-000000000000",  # POST-only routes of upload sessions: filled, then left out (405)
        "alias": "champion",  # seed_demo's governed alias
    }


def walk(patterns, parameters: tuple[str, ...] = (), namespace: str = ""):
    """(namespaced route name, its parameters' names) for every named route."""
    for pattern in patterns:
        own = parameters + tuple(pattern.pattern.converters)
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}:{pattern.namespace}".strip(":") if pattern.namespace else namespace
            yield from walk(pattern.url_patterns, own, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{namespace}:{pattern.name}".strip(":"), own


def dashboard_paths(objects: dict) -> tuple[dict[str, str], list[str]]:
    """Each named dashboard route with its parameters filled; the routes that cannot be filled."""
    paths, unfilled = {}, []
    for name, parameters in walk(get_resolver().url_patterns):
        if name.split(":")[0] in ("admin", "api") or name in NOT_PAGES:
            continue
        kwargs = {}
        for parameter in parameters:
            value = objects.get(parameter)
            kwargs[parameter] = value.get(name.split(":")[0]) if isinstance(value, dict) else value
        if any(value is None for value in kwargs.values()):
            unfilled.append(name)
            continue
        paths[name] = reverse(name, kwargs=kwargs)
    return paths, unfilled


def log_in(page, base: str, username: str) -> None:
    page.context.clear_cookies()
    page.goto(base + reverse("accounts:login"))
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORDS[username])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/")


def check(page, label: str, findings: dict) -> None:
    """Overflow at the current viewport, boxes cut without a cue, and axe's violations on the page now open in `page`."""
    page.add_script_tag(path=str(AXE))
    overflow = page.evaluate(OVERFLOW_JS)
    violations = page.evaluate(AXE_JS)
    findings[label] = {"overflow": overflow, "violations": violations, "cut": page.evaluate(CUT_JS), "scrolling": page.locator(".overflowing").count()}


class Network:
    """The page's requests in flight, so a check can wait for the network to go quiet.

    Playwright's "networkidle" waits for 500 ms without a request after every page; here 100 ms is enough: after the load
    event the only requests are htmx's (a card's live preview, fetched on load), and htmx swaps and settles in ~20 ms.
    """

    QUIET_SECONDS = 0.1

    def __init__(self, page):
        self.page, self.in_flight = page, set()
        page.on("request", lambda request: self.in_flight.add(request))
        page.on("requestfinished", lambda request: self.in_flight.discard(request))
        page.on("requestfailed", lambda request: self.in_flight.discard(request))

    def wait_until_idle(self, timeout: float = 15) -> None:
        self.page.wait_for_load_state("load")
        deadline, quiet_since = time.monotonic() + timeout, None
        while True:
            now = time.monotonic()
            if self.in_flight:
                quiet_since = None
                assert now < deadline, f"requests still in flight after {timeout} s: {[request.url for request in self.in_flight]}"
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= self.QUIET_SECONDS:
                return
            self.page.wait_for_timeout(20)  # Playwright delivers the request events while it waits


def test_every_page_fits_a_phone_and_passes_axe(live_server, transactional_db, browser, settings, tmp_path):
    settings.WEBHOOK_ALLOWED_INTERNAL_HOSTS = ["127.0.0.1"]
    settings.MANIFEST_SIGNING_KEY_FILE = str(tmp_path / "signing.pem")  # the production version's page shows its signature
    create_key_file(settings.MANIFEST_SIGNING_KEY_FILE)
    objects = seed()
    base = live_server.url
    paths, unfilled = dashboard_paths(objects)
    assert not unfilled, f"routes whose parameters this test cannot fill (add them to seed()): {unfilled}"
    paths["compare:page"] += f"?v={MODEL}:1&v={MODEL}:2&v={MODEL}:3"
    paths["versions:files"] += "?path=config.json"
    paths["versions:archive-selected"] += f"?v={MODEL}:1&v={MODEL}:{objects['number']}"
    paths["admin:index"] = reverse("admin:index")
    paths["api docs"] = "/api/v1/docs/"
    paths["api docs (redoc)"] = "/api/v1/docs/redoc/"

    context = browser.new_context(viewport=PHONE)
    context.set_default_timeout(15_000)
    page = context.new_page()
    network = Network(page)
    findings, skipped = {}, {}
    try:
        page.goto(base + reverse("accounts:login"))
        check(page, "accounts:login (logged out)", findings)
        log_in(page, base, "admin")
        for label, path in sorted(paths.items()):
            if label == "accounts:login":
                continue
            response = page.request.get(base + path)
            kind = response.headers.get("content-type", "")
            if response.status == 405:
                skipped[label] = "POST-only action"
                continue
            if not kind.startswith("text/html") or not response.text().lstrip().lower().startswith("<!doctype html"):
                skipped[label] = f"not a page ({kind.split(';')[0]}, status {response.status})"
                continue
            navigation = page.goto(base + path)
            assert navigation.status == 200, f"{label} {path} answered {navigation.status}"
            network.wait_until_idle()
            check(page, label, findings)
        # The keyboard's first stop is the skip link, shown when focused, and it leads into the content; a table
        # that scrolls is a focusable region; the favicon is served.
        page.goto(base + paths["models:detail"])
        page.keyboard.press("Tab")
        skip = page.evaluate("() => ({cls: document.activeElement.className, top: document.activeElement.getBoundingClientRect().top})")
        page.keyboard.press("Enter")
        keyboard = {"skip_link": skip, "after_skip": page.evaluate("() => document.activeElement.id"),
                    "scroll_box_tabindex": page.locator(".scroll.overflowing").first.get_attribute("tabindex"),
                    "favicon": page.request.get(base + page.locator('link[rel="icon"]').first.get_attribute("href")).status}
        navigation = page.goto(base + f"/models/{MODEL}/versions/999/")
        assert navigation.status == 404
        check(page, "404 page", findings)
        log_in(page, base, "scientist")
        navigation = page.goto(base + reverse("audit:list"))
        assert navigation.status == 403
        check(page, "403 page", findings)

        # The comparison page on a desktop: three versions side by side, nothing cut off without a cue to scroll.
        log_in(page, base, "admin")
        page.set_viewport_size(DESKTOP)
        page.goto(base + paths["compare:page"])
        network.wait_until_idle()
        cut_at_desktop = page.evaluate(CUT_JS)

        # Dark mode (prefers-color-scheme) on the busiest pages: the same checks with the dark palette.
        page.emulate_media(color_scheme="dark")
        for label in DARK_PAGES:
            page.goto(base + paths[label])
            network.wait_until_idle()
            check(page, f"{label} (dark)", findings)
    finally:
        context.close()

    report = {"pages": {label: {"violations": result["violations"], "width": result["overflow"], "scrolling_boxes": result["scrolling"]}
                        for label, result in findings.items()},
              "left_out": skipped, "compare_cut_at_1280": cut_at_desktop}
    if os.environ.get("EVERY_PAGE_REPORT"):
        Path(os.environ["EVERY_PAGE_REPORT"]).write_text(json.dumps(report, indent=2))
    print(f"\nChecked {len(findings)} pages at 390 px with axe-core: " + ", ".join(findings))
    print("Left out: " + ", ".join(f"{label} ({why})" for label, why in sorted(skipped.items())))

    expected = {"models:list", "models:detail", "models:edit", "models:permissions", "models:create", "versions:detail", "versions:edit",
                "versions:upload", "versions:archive-selected", "versions:files", "cards:model", "cards:version", "compare:page", "lineage:version", "lineage:datasets", "lineage:dataset", "approvals:inbox",
                "approvals:review", "approvals:history", "approvals:policy", "validation:policy", "events:webhooks", "events:webhook",
                "audit:list", "audit:model", "accounts:tokens",
                "notifications:list", "notifications:settings", "comments:edit", "accounts:login (logged out)", "admin:index", "api docs", "api docs (redoc)", "404 page", "403 page"}
    assert expected <= set(findings), f"pages not checked: {sorted(expected - set(findings))}"
    overflowing = {label: result["overflow"] for label, result in findings.items() if result["overflow"]["page"] > result["overflow"]["viewport"]}
    assert not overflowing, f"pages wider than the 390 px viewport: {overflowing}"
    # Django's admin and Swagger UI lay out their own pages (they are held to the page width and axe above).
    cut = {label: result["cut"] for label, result in findings.items() if result["cut"] and label not in ("admin:index", "api docs", "api docs (redoc)")}
    assert not cut, f"boxes whose content is cut or scrolls without the cue: {cut}"
    assert findings["models:detail"]["scrolling"] > 0, "the versions table scrolls inside its card at 390 px"
    blocking = {label: [v for v in result["violations"] if v["impact"] in BLOCKING_IMPACTS] for label, result in findings.items()}
    blocking = {label: found for label, found in blocking.items() if found}
    assert not blocking, "serious or critical axe violations:\n" + json.dumps(blocking, indent=1)
    assert keyboard["skip_link"]["cls"] == "skip-link" and keyboard["skip_link"]["top"] >= 0 and keyboard["after_skip"] == "main", keyboard
    assert keyboard["scroll_box_tabindex"] == "0" and keyboard["favicon"] == 200, keyboard
    assert not cut_at_desktop, f"the comparison page at 1280 px cuts content without a scroll cue: {cut_at_desktop}"
