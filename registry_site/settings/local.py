"""The embedded default: SQLite, artifacts on local disk, Celery on kombu's filesystem transport."""

from pathlib import Path

from .base import *  # noqa: F403

DEBUG = env_flag("DJANGO_DEBUG", True)  # noqa: F405
# WhiteNoise serves static/ and the apps' static files straight from their folders, also with DEBUG off (scripts/run
# runs the demo that way, so it shows the real 404/500 pages), without a collectstatic step.
WHITENOISE_USE_FINDERS = True

# The SQLite file, the artifacts and the embedded broker's folders live under var/.
# STATIC_ROOT too, empty until collectstatic: WhiteNoise warns at start-up when it is missing.
for _folder in (VAR_DIR, VAR_DIR / "broker" / "queue", VAR_DIR / "broker" / "processed", VAR_DIR / "broker" / "control", Path(str(STATIC_ROOT))):  # noqa: F405
    _folder.mkdir(parents=True, exist_ok=True)
