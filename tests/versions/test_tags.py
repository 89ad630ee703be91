"""Version tags: entered at upload (page or API), shown on the version page and in the API, kept by edits."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from .tags_round_trip import tags_round_trip

pytestmark = pytest.mark.django_db


def test_tags_survive_the_round_trip_between_pages_api_and_database(web_for, api_for, owner, model):
    tags_round_trip(web_for(owner), api_for(owner), model.name)


def test_tags_survive_the_round_trip_on_sqlite_where_uuid_keys_come_back_as_text(tmp_path):
    """SQLite, the embedded default, returns the tag table's UUID column as text: taggit's prefetch matched nothing."""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "registry_site.settings.base",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'registry.sqlite3'}",
        "ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "FILE_UPLOAD_TEMP_DIR": str(tmp_path),
        "CELERY_BROKER_URL": "memory://",
        "DJANGO_ALLOWED_HOSTS": "testserver",
    }
    result = subprocess.run(
        [sys.executable, "-m", "tests.versions.tags_round_trip"],
        cwd=Path(settings.BASE_DIR), env=environment, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "round trip passed on sqlite" in result.stdout
