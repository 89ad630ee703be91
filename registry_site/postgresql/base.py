"""Django's PostgreSQL backend with a client-side bound on every wait for the server.

`statement_timeout` is enforced by the server, and TCP keepalives only notice a peer whose kernel stopped answering.
A server (or a proxy in front of it) that accepts connections and then never answers defeats both, and libpq has no
query timeout of its own: a request would wait until gunicorn killed the worker. psycopg routes every wait for the
server through `Connection.wait()`, which takes a timeout; this backend passes one (OPTIONS["answer_timeout"], set in
settings from DATABASE_ANSWER_TIMEOUT_SECONDS) and closes the connection when it runs out, so the caller gets an
OperationalError (a 503 for web requests, see registry_site.middleware) and the next request connects afresh.

It also skips Django's per-request health check (CONN_HEALTH_CHECKS: a `SELECT 1` round trip before the first query
of every request) for a connection used less than DATABASE_HEALTH_CHECK_IDLE_SECONDS ago: under load that is every
request, and the check cost the stage lookup a third of its round trips. A connection that died within that second
fails its next request with a 503 (as a database restart does anyway) and is replaced at the end of that request.
"""

import time

import psycopg
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base
from psycopg import errors

if not hasattr(errors, "_WaitTimeout"):
    raise ImproperlyConfigured(f"registry_site.postgresql needs psycopg 3.3 or later (Connection.wait with a timeout); found {psycopg.__version__}")


class BoundedConnection(psycopg.Connection):
    answer_timeout: float | None = None

    def wait(self, gen, interval: float = 0.1, timeout: float | None = None):
        if timeout is not None or not self.answer_timeout:
            return super().wait(gen, interval=interval, timeout=timeout)
        try:
            return super().wait(gen, interval=interval, timeout=self.answer_timeout)
        except errors._WaitTimeout as exc:  # psycopg's own signal that the timeout ran out
            # The server may still answer the abandoned query later: the connection is in an unknown state.
            self.close()
            raise psycopg.OperationalError(
                f"the database did not answer within {self.answer_timeout:g} s; the connection was closed"
            ) from exc


class _PsycopgWithBoundedWaits:
    """The psycopg module as Django's backend uses it, except that connect() returns a BoundedConnection."""

    connect = staticmethod(BoundedConnection.connect)

    def __getattr__(self, name: str):
        return getattr(psycopg, name)


class DatabaseWrapper(base.DatabaseWrapper):
    Database = _PsycopgWithBoundedWaits()

    def get_connection_params(self) -> dict:
        params = super().get_connection_params()
        params.pop("answer_timeout", None)  # ours, not libpq's
        return params

    def get_new_connection(self, conn_params: dict):
        connection = super().get_new_connection(conn_params)
        connection.answer_timeout = self.settings_dict["OPTIONS"].get("answer_timeout") or None
        return connection

    used_at: float | None = None

    def _cursor(self, name=None):
        cursor = super()._cursor(name)
        self.used_at = time.monotonic()
        return cursor

    def close_if_health_check_failed(self):
        idle = getattr(settings, "DATABASE_HEALTH_CHECK_IDLE_SECONDS", 0)
        if idle and self.connection is not None and self.used_at is not None and time.monotonic() - self.used_at < idle:
            self.health_check_done = True
            return
        super().close_if_health_check_failed()
