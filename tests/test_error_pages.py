"""Error pages: 400, 403, 404 and 500 are the registry's own pages with a way on (navigation), the API keeps answering
JSON, and the demo (scripts/run: local settings with DEBUG off) shows the 404 page rather than Django's URL list."""

import json
import os
import re
import subprocess
import sys

import pytest
from django.conf import settings
from django.test import Client, RequestFactory
from django.urls import Resolver404, get_resolver, resolve

pytestmark = pytest.mark.django_db

NAVIGATION = ('href="/"', 'href="/approvals/"', 'href="/datasets/"', 'href="/api/v1/docs/"')


def _raised(handler, request):
    """Call a 500 handler as Django does: inside the `except` block of the failure."""
    try:
        raise RuntimeError("the view failed")
    except RuntimeError:
        return handler(request)


def test_a_missing_page_is_the_registry_404_page_with_navigation(web_for, owner):
    response = web_for(owner).get("/models/no-such-model/")
    page = response.content.decode()
    assert response.status_code == 404 and "404.html" in [t.name for t in response.templates]
    assert "Page not found" in page and "<code>/models/no-such-model/</code>" in page
    assert all(link in page for link in NAVIGATION)
    assert 'aria-label="Main"' in page, "a logged-in user keeps the top bar's links"


def test_a_missing_page_offers_a_login_to_someone_logged_out(client):
    response = client.get("/accounts/no-such-page/")
    assert response.status_code == 404
    assert 'href="/accounts/login/?next=/accounts/no-such-page/"' in response.content.decode()


def test_a_forbidden_page_is_the_registry_403_page_with_the_reason(web_for, reviewer):
    response = web_for(reviewer).get("/audit/")
    page = response.content.decode()
    assert response.status_code == 403 and "403.html" in [t.name for t in response.templates]
    assert "You may not do this" in page and "Only auditors may read the whole audit log." in page
    assert all(link in page for link in NAVIGATION)


def test_a_form_sent_without_its_csrf_token_gets_the_registry_403_page(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post("/accounts/logout/")
    assert response.status_code == 403
    assert "The form could not be checked" in response.content.decode()


def test_a_request_for_an_unknown_host_is_the_registry_400_page(client):
    response = client.get("/accounts/login/", HTTP_HOST="registry.evil.example")
    assert response.status_code == 400
    assert "The request could not be read" in response.content.decode()


def test_a_server_error_is_the_stand_alone_500_page_whose_links_all_lead_somewhere():
    handler = get_resolver().resolve_error_handler(500)
    response = _raised(handler, RequestFactory().get("/models/"))
    page = response.content.decode()
    assert response.status_code == 500 and "Something went wrong on our side" in page
    links = re.findall(r'href="([^"]+)"', page)
    assert {"/", "/approvals/", "/datasets/", "/api/v1/docs/"} <= set(links)
    for link in links:
        try:
            resolve(link)
        except Resolver404:
            pytest.fail(f"the 500 page links to {link}, which is no page")


def test_the_api_keeps_answering_json_errors(api_for, owner, reviewer, model):
    assert api_for(owner).get("/api/v1/models/no-such-model/").json()["error"]["code"] == "not_found"
    assert api_for(owner).get("/api/v1/no-such-endpoint/").json()["error"]["code"] == "not_found"
    failed = _raised(get_resolver().resolve_error_handler(500), RequestFactory().get("/api/v1/models/"))
    assert failed.status_code == 500 and json.loads(failed.content)["error"]["code"] == "server_error"
    for status_code in (400, 403, 404):
        answer = get_resolver().resolve_error_handler(status_code)(RequestFactory().get("/api/v1/models/"), Exception())
        assert answer.status_code == status_code and answer["Content-Type"] == "application/json"


DEMO_PROBE = """
import django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="127.0.0.1")
missing = client.get("/no-such-page/")
style = client.get("/static/css/app.css")
icon = client.get("/static/img/favicon.svg")
print(missing.status_code, style.status_code, icon.status_code)
print(missing.content.decode())
"""


def test_the_demo_settings_show_the_404_page_and_serve_static_files_with_debug_off():
    """scripts/run runs registry_site.settings.local with DJANGO_DEBUG=false; WhiteNoise serves the static files."""
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "registry_site.settings.local", "DJANGO_DEBUG": "false"}
    probe = subprocess.run([sys.executable, "-c", DEMO_PROBE], cwd=settings.BASE_DIR, env=environment, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr[-2000:]
    statuses, page = probe.stdout.split("\n", 1)
    assert statuses.split() == ["404", "200", "200"]
    assert "Page not found" in page and "URLconf" not in page and "Using the URLconf" not in page


def test_the_favicon_is_served_at_the_site_root_without_a_login(client):
    for path, kind in (("/favicon.ico", "image/"), ("/apple-touch-icon.png", "image/png")):
        answer = client.get(path)
        assert answer.status_code == 200 and answer["Content-Type"].startswith(kind), (path, answer.status_code)
