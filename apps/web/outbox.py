"""The retry rules and sweep shared by the outboxes whose rows a worker claims and sends (webhook deliveries, notification
emails).

An outbox names its settings prefix: `<PREFIX>_MAX_ATTEMPTS`, `_RETRY_BASE_SECONDS`, `_RETRY_MAX_SECONDS`, `_LEASE_SECONDS`
and `_RESEND_AFTER_SECONDS` are read when used (registry_site/settings checks them at start-up). Its rows have the columns
status (its in-flight, failed, given-up and retryable values named here), attempts, claimed_at, next_attempt_at and
message_due_at (each behind `column_prefix`) and an error column.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from registry_site import broker

SWEEP_BATCH = 500
LOST = "The worker stopped during the attempt."


@dataclass(frozen=True)
class Outbox:
    settings_prefix: str
    in_flight: str
    failed: str
    gave_up: str
    retryable: tuple[str, ...]
    column_prefix: str = ""
    error_column: str = "last_error"

    def setting(self, name: str) -> int:
        return getattr(settings, f"{self.settings_prefix}_{name}")

    def column(self, name: str) -> str:
        return self.column_prefix + name

    def lease(self) -> timedelta:
        return timedelta(seconds=self.setting("LEASE_SECONDS"))

    def delay(self, attempts: int) -> timedelta:
        """Exponential backoff after the n-th failed attempt: base, 2 x base, 4 x base, ... capped."""
        seconds = self.setting("RETRY_BASE_SECONDS") * 2 ** min(max(attempts - 1, 0), 32)
        return timedelta(seconds=min(seconds, self.setting("RETRY_MAX_SECONDS")))

    def publish(self, task, rows: QuerySet, pk: int, *, due_at=None) -> bool:
        """Hand row `pk` to the broker as `task`, to run at `due_at` (now by default): one bounded attempt that never
        raises (registry_site.broker.publish), then the row's message_due_at. False if the broker did not take it;
        the sweep sends it later."""
        now = timezone.now()
        due_at = max(due_at or now, now)
        if not broker.publish(task, args=[pk], countdown=(due_at - now).total_seconds()):
            return False
        rows.filter(pk=pk).update(**{self.column("message_due_at"): due_at})
        return True

    def gives_up(self, attempts: int) -> bool:
        return attempts >= self.setting("MAX_ATTEMPTS")

    def sweep(self, rows: QuerySet, *, send: Callable[[int], bool], sendable: Q = Q()) -> dict:
        """Take back rows whose worker died mid-attempt (giving up on those out of attempts), then hand `send` the due
        ones the broker never got, or got long ago; stop at the first the broker refuses."""
        now, c = timezone.now(), self.column
        stale = rows.filter(**{c("status"): self.in_flight, c("claimed_at") + "__lt": now - self.lease()})
        given_up = stale.filter(**{c("attempts") + "__gte": self.setting("MAX_ATTEMPTS")}).update(
            **{c("status"): self.gave_up, c("claimed_at"): None, self.error_column: LOST}
        )
        retried = stale.update(**{c("status"): self.failed, c("claimed_at"): None, c("next_attempt_at"): now, c("message_due_at"): None, self.error_column: LOST})
        resend_before = now - timedelta(seconds=self.setting("RESEND_AFTER_SECONDS"))
        due = (
            rows.filter(sendable, **{c("status") + "__in": self.retryable, c("next_attempt_at") + "__lte": now})
            .filter(Q(**{c("message_due_at") + "__isnull": True}) | Q(**{c("message_due_at") + "__lt": resend_before}))
            .order_by(c("next_attempt_at"))
            .values_list("pk", flat=True)[:SWEEP_BATCH]
        )
        sent = 0
        for pk in list(due):
            if not send(pk):
                break
            sent += 1
        return {"reclaimed": given_up + retried, "sent": sent}
