from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import authentication, exceptions

from .models import ApiToken, token_digest


def _user_for_token(digest: str):
    """The token's user, with `token_id` and `token_last_used_at`, in one query.

    A raw query because every API request pays for this one: building the ORM join cost more than running it.
    """
    User = get_user_model()
    sql = (
        f"SELECT u.*, t.id AS token_id, t.last_used_at AS token_last_used_at FROM {User._meta.db_table} u"
        f" JOIN {ApiToken._meta.db_table} t ON t.user_id = u.{User._meta.pk.column}"
        " WHERE t.digest = %s AND t.revoked_at IS NULL"
    )
    return next(iter(User.objects.raw(sql, [digest])), None)


def _aware(value) -> datetime | None:
    """Raw queries skip Django's converters: SQLite gives text or naive datetimes, PostgreSQL aware ones."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and timezone.is_naive(value):
        value = timezone.make_aware(value, dt_timezone.utc)
    return value


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>` (or `Token <token>`), looked up by its SHA-256."""

    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower().decode(errors="replace") not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send the header as 'Authorization: Bearer <token>'.")
        user = _user_for_token(token_digest(header[1].decode(errors="replace")))
        if user is None or not user.is_active:
            raise exceptions.AuthenticationFailed("Unknown or revoked token; create a new one under 'API tokens'.")
        now = timezone.now()
        last_used = _aware(user.token_last_used_at)
        if last_used is None or now - last_used > timedelta(minutes=5):
            ApiToken.objects.filter(pk=user.token_id).update(last_used_at=now)
        return user, user.token_id

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
