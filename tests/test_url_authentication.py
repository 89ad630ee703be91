"""Every URL requires a login except an explicit allowlist, proved by walking the whole URLconf."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

PUBLIC = {"/accounts/login/", "/admin/login/", "/healthz", "/.well-known/model-registry-keys.json"}


def _walk(patterns, prefix=""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route


def _example_path(route: str) -> str:
    route = route.lstrip("^").rstrip("$").replace("\\Z", "")
    route = re.sub(r"<int:[^>]+>", "1", route)
    route = re.sub(r"<path:[^>]+>", "a/b.txt", route)
    route = re.sub(r"<uuid:[^>]+>", "00000000-0000-0000-0000-000000000000", route)
    route = re.sub(r"<(str:)?[^>]+>", "sentiment", route)
    route = re.sub(r"\(\?P<[^>]+>[^)]*\)", "x", route)
    route = route.replace(".*", "anything")
    return "/" + route


def test_every_url_but_the_allowlist_needs_authentication(client, model, version):
    paths = sorted({_example_path(route) for route in _walk(get_resolver().url_patterns)})
    assert len(paths) > 20
    for path in paths:
        if path in PUBLIC:
            continue
        for method in ("get", "post"):
            response = getattr(client, method)(path)
            if path.startswith("/api/"):
                assert response.status_code == 401, (method, path, response.status_code)
            elif path.startswith("/admin/"):
                assert response.status_code in (302, 404), (method, path, response.status_code)
                if response.status_code == 302:
                    assert "/login/" in response["Location"], (method, path)
            else:
                assert response.status_code in (302, 405), (method, path, response.status_code)
                if response.status_code == 302:
                    assert response["Location"].startswith("/accounts/login/"), (method, path)


def test_the_allowlisted_urls_answer_without_a_login(client):
    assert client.get("/accounts/login/").status_code == 200
    assert client.get("/healthz").json() == {"status": "ok"}
