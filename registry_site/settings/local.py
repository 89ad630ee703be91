"""The embedded default: SQLite, artifacts on local disk, Celery on kombu's filesystem transport."""

from .base import *  # noqa: F403

DEBUG = env.bool("DJANGO_DEBUG", default=True)  # noqa: F405

VAR_DIR.mkdir(parents=True, exist_ok=True)  # noqa: F405  (the SQLite file, artifacts and the broker's folders live here)
