"""The embedded default: SQLite, artifacts on local disk, Celery on kombu's filesystem transport."""

from .base import *  # noqa: F403

DEBUG = env.bool("DJANGO_DEBUG", default=True)  # noqa: F405

# The SQLite file, the artifacts and the embedded broker's folders live under var/.
for _folder in (VAR_DIR, VAR_DIR / "broker" / "queue", VAR_DIR / "broker" / "processed", VAR_DIR / "broker" / "control"):  # noqa: F405
    _folder.mkdir(parents=True, exist_ok=True)
