"""Values read by hand-written SQL, which skips Django's converters."""

from datetime import datetime
from datetime import timezone as dt_timezone

from django.utils import timezone
from django.utils.dateparse import parse_datetime


def aware(value) -> datetime | None:
    """A datetime column as Django's converters give it: SQLite hands back text or naive datetimes, PostgreSQL aware ones."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and timezone.is_naive(value):
        value = timezone.make_aware(value, dt_timezone.utc)
    return value
