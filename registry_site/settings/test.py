"""Tests run on PostgreSQL when it answers (always in CI), else on SQLite with the PostgreSQL-only tests skipped."""

import os
import socket
import tempfile

from .base import *  # noqa: F403
from .base import database_from_url, env


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


TEST_POSTGRES_URL = env.str("TEST_DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/registry")
TEST_REDIS_URL = env.str("TEST_REDIS_URL", default="redis://127.0.0.1:6379/15")
POSTGRES_AVAILABLE = _reachable("127.0.0.1", 5432) if "127.0.0.1:5432" in TEST_POSTGRES_URL else True
if POSTGRES_AVAILABLE:
    # The production backend and timeouts, so every test goes through them; connections closed after each request as before.
    DATABASES = {"default": {**database_from_url(TEST_POSTGRES_URL), "CONN_MAX_AGE": 0}}
    # One test database per run, so runs started side by side (a developer's and a helper's) never share one.
    DATABASES["default"]["TEST"] = {"NAME": f"test_registry_{os.getpid()}"}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ARTIFACT_ROOT = env.str("ARTIFACT_ROOT", default="") or tempfile.mkdtemp(prefix="registry-test-artifacts-")
FILE_UPLOAD_TEMP_DIR = None  # the system temp dir: each test's artifact folder is its own
REDIS_AVAILABLE = _reachable("127.0.0.1", 6379)
# Each test run has its own queue, so a worker started by one run never takes another run's jobs.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/15")
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default=f"test-{os.getpid()}")
# Tests take brokers down and bring them back at will; the tests of the publish pause set it themselves.
BROKER_PUBLISH_PAUSE_SECONDS = 0
STORAGES = {
    **STORAGES,  # noqa: F405
    "artifacts": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": ARTIFACT_ROOT, "base_url": None},
    },
}
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
STATIC_ROOT = tempfile.mkdtemp(prefix="registry-test-static-")
WHITENOISE_USE_FINDERS = True
# Log-in lockouts are on whatever LOGIN_THROTTLING says: the lockout tests need them, and attempts are database rows,
# so each test starts with none. The shipped limits (10 failures, 15 minutes) are the ones tested.
AXES_ENABLED = True
