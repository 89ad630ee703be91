"""The notifications page, the navigation bar's unread count, marking read and the email settings page."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.notifications.models import EmailPreference, EmailStatus, Kind, Notification
from apps.notifications.services import notify
from tests.helpers import queries_for

pytestmark = pytest.mark.django_db


def _notify(model, user, count: int, **fields):
    for index in range(count):
        notify(recipients=[user], kind=fields.get("kind", Kind.MENTIONED), model=model, title=fields.get("title", f"note {index}"), url="/")


def test_the_navigation_bar_shows_the_unread_count_without_a_query_of_its_own(model, reviewer, web_for):
    client = web_for(reviewer)
    assert 'id="nav-notifications"' in client.get("/").text and "data-unread" not in client.get("/").text
    few = queries_for(client, "/")
    _notify(model, reviewer, 3)
    with CaptureQueriesContext(connection) as ctx:
        page = client.get("/").text
    assert 'data-unread="3"' in page
    assert len(ctx.captured_queries) == few  # the count rides on the query that loads the user
    (touching,) = [q["sql"] for q in ctx.captured_queries if "notifications_notification" in q["sql"]]
    assert 'FROM "auth_user"' in touching


def test_the_page_lists_only_the_users_own_searchable_sortable_and_paged(model, owner, reviewer, web_for):
    _notify(model, reviewer, 30)
    _notify(model, owner, 1, title="for the owner only")
    client = web_for(reviewer)
    first = client.get("/notifications/").text
    assert "note 29" in first and "note 0" not in first and "for the owner only" not in first and "Page 1 of 2" in first
    assert "note 0" in client.get("/notifications/?sort=oldest").text
    found = client.get("/notifications/?q=note 1").text
    assert "note 1<" in found and "note 12" in found and "note 2<" not in found


def test_the_list_costs_the_same_queries_with_more_notifications(model, reviewer, web_for):
    client = web_for(reviewer)
    _notify(model, reviewer, 2)
    few = queries_for(client, "/notifications/")
    # session, user with its unread count and the Audit link's permission, the page's count, the page
    assert few == 4
    _notify(model, reviewer, 40)
    assert queries_for(client, "/notifications/") == few
    assert queries_for(client, "/notifications/settings/") == 3  # the page's one query is the user's email choices


def test_marking_one_and_all_read(model, reviewer, web_for):
    _notify(model, reviewer, 3)
    client = web_for(reviewer)
    one = Notification.objects.filter(recipient=reviewer).first()
    response = client.post("/notifications/read/", {"id": one.pk, "query": "sort=oldest"})
    assert response.status_code == 302 and response.url == "/notifications/?sort=oldest"
    assert 'data-unread="2"' in client.get("/notifications/").text
    assert client.get("/notifications/?unread=1").text.count("data-notification=") == 2
    client.post("/notifications/read/", {"all": "1"})
    assert not Notification.objects.filter(recipient=reviewer, read_at__isnull=True).exists()
    assert "data-unread" not in client.get("/notifications/").text


def test_another_users_notification_cannot_be_marked(model, owner, reviewer, web_for):
    _notify(model, owner, 1)
    theirs = Notification.objects.get(recipient=owner)
    web_for(reviewer).post("/notifications/read/", {"id": theirs.pk})
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_email_settings_are_saved_per_kind(reviewer, web_for):
    client = web_for(reviewer)
    page = client.get("/notifications/settings/").text
    assert page.count('type="checkbox"') == len(Kind.values) and page.count("checked") == len(Kind.values)
    assert "no email address" in page
    response = client.post("/notifications/settings/", {"email_kinds": [Kind.REQUEST_APPROVED, Kind.MENTIONED]})
    assert response.status_code == 302
    off = set(EmailPreference.objects.filter(user=reviewer, email=False).values_list("kind", flat=True))
    assert off == set(Kind.values) - {Kind.REQUEST_APPROVED, Kind.MENTIONED}
    assert client.post("/notifications/settings/", {"email_kinds": ["nonsense"]}).status_code == 400


def test_logged_out_visitors_are_sent_to_log_in(client):
    response = client.get("/notifications/")
    assert response.status_code == 302 and "/accounts/login/" in response.url


def test_administrators_see_where_each_email_stands_in_the_admin(model, reviewer, make_user, client):
    _notify(model, reviewer, 1, title="visible to the administrator")
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    page = client.get("/admin/notifications/notification/")
    assert page.status_code == 200 and "visible to the administrator" in page.text
    client.force_login(make_user("staffer", is_staff=True))
    assert client.get("/admin/notifications/notification/").status_code == 403


def test_administrators_see_an_email_that_was_given_up_and_why(model, reviewer, make_user, client):
    _notify(model, reviewer, 1, title="never reached them")
    Notification.objects.update(email_status=EmailStatus.GAVE_UP, email_attempts=6, email_error="SMTPRecipientsRefused: no such user")
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    page = client.get("/admin/notifications/notification/?email_status__exact=gave_up")
    assert "never reached them" in page.text and "Gave up" in page.text


def test_the_recipient_sees_on_the_page_that_the_email_was_given_up(model, reviewer, web_for):
    _notify(model, reviewer, 1, title="never reached them")
    Notification.objects.update(email_status=EmailStatus.GAVE_UP)
    page = web_for(reviewer).get("/notifications/")
    assert 'data-email-status="gave_up"' in page.text and "email could not be sent" in page.text.lower()
