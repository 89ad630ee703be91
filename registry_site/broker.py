"""Talking to the broker: bounded publishing for requests and sweeps, and a Redis transport that survives a restart.

Publishing. Every message the registry sends is a wake-up call for a row that is already committed (a validation job,
a webhook delivery: the rows are the outbox), and the beat sweeps resend whatever the broker never got. So a request
never needs the broker: `publish` makes one attempt, with kombu's connection retries off and short socket timeouts
(CELERY_BROKER_TRANSPORT_OPTIONS in the settings), and never raises. After a failed attempt this process skips
publishing for BROKER_PUBLISH_PAUSE_SECONDS, doubled after each further failure up to MAX_PAUSE_SECONDS: the other
messages of the same transaction, and a storm of requests during an outage, pay no timeout at all.

The Redis transport. When a worker loses its connection, Celery calls kombu's `Connection.collect()`, which releases
the transport (`transport.client = None`) but keeps the consuming channel as the connection's default channel when its
first close failed (the close reads the pending BRPOP reply, and that read raised the connection error). Celery then
calls `connection.close()`, which closes that channel again; if the worker holds unacknowledged messages (a countdown
retry waiting in the worker, a task acknowledged late), the channel's QoS restores them through a new Redis pool whose
parameters come from `transport.client.hostname`: AttributeError ('NoneType' object has no attribute 'hostname'),
which is not one of the connection errors Celery recovers from, so the worker stops with "Unrecoverable error" (kombu
5.7.0, celery 5.7.0, redis-py 8.1.0). `RedisTransport` raises the connection error instead: the close is ignored as
any close of a lost connection is, the worker reconnects, and the unacknowledged messages stay in Redis's unacked
index (restored after the visibility timeout) or, if Redis lost them, are resent by the sweeps.
"""

import logging
import threading
import time

from django.conf import settings
from kombu.transport import redis as kombu_redis

logger = logging.getLogger(__name__)

MAX_PAUSE_SECONDS = 60.0


class PublishPause:
    """Per process: after a failed publish, no attempt until the pause is over; one attempt (a probe) then."""

    def __init__(self):
        self._lock = threading.Lock()
        self._failures = 0
        self._until = 0.0
        self._probing = False

    def try_begin(self) -> bool:
        """Whether this caller may publish now. During a pause, and while another thread probes after one, it may not."""
        with self._lock:
            if not self._failures:
                return True
            if self._probing or time.monotonic() < self._until:
                return False
            self._probing = True
            return True

    def succeeded(self) -> None:
        with self._lock:
            self._failures, self._until, self._probing = 0, 0.0, False

    def failed(self) -> float:
        """Start (or lengthen) the pause; returns its length in seconds."""
        with self._lock:
            self._failures += 1
            seconds = min(settings.BROKER_PUBLISH_PAUSE_SECONDS * 2 ** min(self._failures - 1, 16), MAX_PAUSE_SECONDS)
            self._until, self._probing = time.monotonic() + seconds, False
            return seconds

    @property
    def paused(self) -> bool:
        with self._lock:
            return bool(self._failures) and time.monotonic() < self._until


publish_pause = PublishPause()


def publish(task, *, args: list, countdown: float | None = None) -> bool:
    """Send `task` to the broker once, unless a recent failure paused publishing. True if the broker took it.

    Never raises: the caller's transaction has committed, and the sweep resends what did not go out.
    """
    if not publish_pause.try_begin():
        return False
    try:
        task.apply_async(args=args, countdown=countdown or None, retry=False)
    except Exception as exc:  # whatever the broker (or its client library) raised, the change is committed and stays
        seconds = publish_pause.failed()
        logger.warning("Could not send %s%s to the broker (%s: %s); not trying again for %g s, the sweep will resend it.",
                       task.name, args, type(exc).__name__, exc, seconds)
        return False
    publish_pause.succeeded()
    return True


class RedisChannel(kombu_redis.Channel):
    def _connparams(self, asynchronous=False):
        if self.connection.client is None:  # the transport was released after a lost connection (see the module docstring)
            raise kombu_redis.redis.exceptions.ConnectionError("The broker connection was lost and has been released.")
        return super()._connparams(asynchronous=asynchronous)


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport, with a channel that answers a released connection with a connection error."""

    Channel = RedisChannel
