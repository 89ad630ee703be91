"""Each web process remembers the tokens it accepted for API_TOKEN_CACHE_SECONDS (apps.accounts.authentication), so an
API call pays one database round trip, not two. What may change under a remembered token, through the API and pages."""

import time

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken
from apps.accounts.services import api_token_create
from apps.models.permissions import Action
from apps.models.services import model_permission_revoke
from tests.factories import register_version

pytestmark = pytest.mark.django_db


def _api(user) -> APIClient:
    _, secret = api_token_create(user=user, name="ci")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return api


def _queries(api, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        assert api.get(url).status_code == 200
    return [query["sql"] for query in captured.captured_queries]


def test_a_remembered_token_costs_no_query_so_a_production_lookup_is_one(model, owner):
    register_version(model, owner)
    api = _api(owner)
    url = f"/api/v1/models/{model.name}/versions/1/"
    first = _queries(api, url)
    assert sum("accounts_apitoken" in sql for sql in first) >= 1  # looked up (and its last use stamped) once
    later = _queries(api, url)
    assert len(later) == 1 and "accounts_apitoken" not in later[0]  # the version's fingerprint, nothing else


def test_a_token_revoked_on_the_tokens_page_is_refused_at_once(owner):
    api = _api(owner)
    assert api.get("/api/v1/models/").status_code == 200
    page = Client()
    page.force_login(owner)
    token = ApiToken.objects.get(user=owner)
    assert page.post(f"/accounts/tokens/{token.pk}/revoke/").status_code == 302
    assert api.get("/api/v1/models/").status_code == 401


def test_a_permission_taken_away_applies_to_the_next_request_of_a_remembered_token(model, owner, reviewer):
    api = _api(reviewer)
    assert api.get(f"/api/v1/models/{model.name}/").status_code == 200
    model_permission_revoke(model=model, actor=owner, action=Action.VIEW, user=reviewer)
    assert api.get(f"/api/v1/models/{model.name}/").status_code == 404


def test_a_deactivated_user_is_refused_at_once(owner):
    api = _api(owner)
    assert api.get("/api/v1/models/").status_code == 200
    owner.is_active = False
    owner.save()
    assert api.get("/api/v1/models/").status_code == 401


@override_settings(API_TOKEN_CACHE_SECONDS=0.3)
def test_a_revocation_written_by_another_process_is_honoured_once_the_window_has_passed(owner):
    api = _api(owner)
    assert api.get("/api/v1/models/").status_code == 200
    ApiToken.objects.update(revoked_at=timezone.now())  # what another worker's write looks like here: no signal
    assert api.get("/api/v1/models/").status_code == 200  # still remembered: the documented window
    time.sleep(0.35)
    assert api.get("/api/v1/models/").status_code == 401


@override_settings(API_TOKEN_CACHE_SECONDS=0)
def test_with_the_cache_off_another_process_s_revocation_applies_at_once(owner):
    api = _api(owner)
    assert api.get("/api/v1/models/").status_code == 200
    ApiToken.objects.update(revoked_at=timezone.now())
    assert api.get("/api/v1/models/").status_code == 401
