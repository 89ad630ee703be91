"""Log-in throttling (django-axes) through the log-in pages a person uses: ours and the admin's.

Settings as shipped: 10 failures per username or per address, then a 15-minute cool-off from the last failure.
"""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


def _attempt(client, username: str, password: str, address: str = "127.0.0.1", url: str = LOGIN):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


def _logged_in(client) -> bool:
    return client.get("/").status_code == 200  # the models list; a visitor is sent to the log-in page


def _cool_off_passes() -> None:
    """What the clock does: the failures recorded become older than the cool-off."""
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.latest("attempt_time").attempt_time - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))


def test_thirty_wrong_passwords_then_the_right_one_is_not_accepted(client, owner):
    answers = [_attempt(client, "owner", f"guess-{n}").status_code for n in range(30)]
    response = _attempt(client, "owner", "pw-owner")
    assert answers[:9] == [200] * 9 and set(answers[9:]) == {429}  # the form again, then locked from the 10th failure
    assert response.status_code == 429 and not _logged_in(client)
    assert response["Retry-After"] == str(15 * 60)
    page = response.content.decode()
    assert 'id="lockout"' in page and "Try again after" in page and "(in 15 minutes)" in page and "UTC" in page
    assert "didn't match" not in page


def test_fewer_failures_than_the_limit_still_let_the_right_password_in(client, owner):
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _attempt(client, "owner", f"guess-{n}").status_code == 200
    assert _attempt(client, "owner", "pw-owner").status_code == 302 and _logged_in(client)


def test_an_account_is_locked_whichever_addresses_the_failures_came_from(client, owner, reviewer):
    for n in range(settings.AXES_FAILURE_LIMIT):
        _attempt(client, "owner", "wrong", address=f"10.0.0.{n + 1}")
    assert _attempt(client, "owner", "pw-owner", address="10.9.9.9").status_code == 429 and not _logged_in(client)
    assert _attempt(client, "reviewer", "pw-reviewer", address="10.9.9.9").status_code == 302  # others are not locked out


def test_an_address_is_locked_whichever_accounts_it_tried(client, owner, reviewer):
    for n in range(settings.AXES_FAILURE_LIMIT):
        _attempt(client, f"user-{n}", "wrong", address="10.0.0.66")
    assert _attempt(client, "owner", "pw-owner", address="10.0.0.66").status_code == 429 and not _logged_in(client)
    assert _attempt(client, "reviewer", "pw-reviewer", address="10.0.0.67").status_code == 302  # another address is not


def test_after_the_cool_off_the_right_password_works_again(client, owner):
    for n in range(settings.AXES_FAILURE_LIMIT):
        _attempt(client, "owner", f"guess-{n}")
    assert _attempt(client, "owner", "pw-owner").status_code == 429
    _cool_off_passes()
    assert _attempt(client, "owner", "pw-owner").status_code == 302 and _logged_in(client)


def test_logging_in_to_another_account_does_not_clear_an_addresss_failures(client, owner, reviewer):
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        _attempt(client, "owner", f"guess-{n}")
    assert _attempt(client, "reviewer", "pw-reviewer").status_code == 302
    client.post("/accounts/logout/")
    assert _attempt(client, "owner", "one-more-guess").status_code == 429


def test_the_admin_log_in_is_throttled_too_and_says_when_to_try_again(client, make_user):
    make_user("root", is_staff=True, is_superuser=True)
    for n in range(30):
        _attempt(client, "root", f"guess-{n}", url="/admin/login/")
    response = _attempt(client, "root", "pw-root", url="/admin/login/")
    assert response.status_code == 429 and response["Retry-After"] == str(15 * 60)
    page = response.content.decode()
    assert "Try again after" in page and "Django administration" in page
    assert client.get("/admin/").status_code == 302  # not logged in: sent to the admin log-in


def test_a_lockout_from_the_admin_page_also_holds_on_the_site_log_in(client, make_user):
    make_user("root", is_staff=True, is_superuser=True)
    for n in range(settings.AXES_FAILURE_LIMIT):
        _attempt(client, "root", f"guess-{n}", url="/admin/login/")
    assert _attempt(client, "root", "pw-root").status_code == 429 and not _logged_in(client)
