"""Failed API tokens are throttled per address (apps.accounts.authentication), through the API with token headers.

Settings as shipped: 20 failed tokens from one address block that address's token requests for 15 minutes.
"""

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.accounts.services import api_token_create

pytestmark = pytest.mark.django_db

URL = "/api/v1/models/"


def _get(token: str, address: str = "127.0.0.1", scheme: str = "Bearer"):
    return APIClient().get(URL, HTTP_AUTHORIZATION=f"{scheme} {token}", REMOTE_ADDR=address)


def _fail_until_blocked(address: str = "127.0.0.1") -> list[int]:
    return [_get(f"mr_wrong{n}", address).status_code for n in range(settings.API_TOKEN_FAILURE_LIMIT)]


def test_repeated_wrong_tokens_from_one_address_get_429_with_retry_after_even_for_a_right_token(owner):
    _, secret = api_token_create(user=owner, name="ci")
    assert _fail_until_blocked() == [401] * settings.API_TOKEN_FAILURE_LIMIT
    blocked = _get("mr_another-guess")
    right = _get(secret)
    assert blocked.status_code == 429 and right.status_code == 429
    assert blocked.json()["error"]["code"] == "throttled" and "Try again in" in blocked.json()["error"]["message"]
    assert 0 < int(blocked["Retry-After"]) <= settings.API_TOKEN_COOLOFF_SECONDS


def test_a_valid_token_keeps_working_from_other_addresses_while_one_is_blocked(owner):
    _, secret = api_token_create(user=owner, name="ci")
    _fail_until_blocked("10.0.0.66")
    assert _get("mr_guess", "10.0.0.66").status_code == 429
    assert _get(secret, "10.0.0.7").status_code == 200
    assert _get("mr_wrong", "10.0.0.8").status_code == 401  # another address starts with its own count


def test_fewer_failures_than_the_limit_leave_valid_tokens_working(owner):
    _, secret = api_token_create(user=owner, name="ci")
    for n in range(settings.API_TOKEN_FAILURE_LIMIT - 1):
        assert _get(f"mr_wrong{n}").status_code == 401
    assert _get(secret).status_code == 200


def test_malformed_token_headers_count_as_failures(owner):
    for _ in range(settings.API_TOKEN_FAILURE_LIMIT):
        assert APIClient().get(URL, HTTP_AUTHORIZATION="Bearer two parts", REMOTE_ADDR="10.0.0.9").status_code == 401
    assert _get("mr_x", "10.0.0.9", scheme="Token").status_code == 429


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_one_throttled(owner, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    _, secret = api_token_create(user=owner, name="ci")
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    for n in range(settings.API_TOKEN_FAILURE_LIMIT):
        # a client-written first entry proves nothing: the proxy's appended entry is what counts
        APIClient().get(URL, HTTP_AUTHORIZATION=f"Bearer mr_w{n}", HTTP_X_FORWARDED_FOR=f"1.2.3.{n}, 203.0.113.5", **proxy)
    assert APIClient().get(URL, HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_X_FORWARDED_FOR="203.0.113.5", **proxy).status_code == 429
    assert APIClient().get(URL, HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_X_FORWARDED_FOR="203.0.113.6", **proxy).status_code == 200


def _queries(secret: str) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        assert _get(secret).status_code == 200
    return [query["sql"].lower() for query in ctx.captured_queries]


@override_settings(API_TOKEN_CACHE_SECONDS=0)  # every request looks its token up
def test_a_valid_token_costs_no_database_query_for_throttling(owner):
    _, secret = api_token_create(user=owner, name="ci")
    _get(secret)  # the first use of the day writes the token's last-used time
    before = _queries(secret)
    _fail_until_blocked("10.0.0.66")  # another address's failures and block live in the cache, not the database
    _get("mr_wrong")  # and one of this address's own
    after = _queries(secret)
    assert len(after) == len(before) and sum("accounts_apitoken" in query for query in after) == 1  # the one token look-up
    assert not any("axes" in query for query in after)
