"""A per-test upload spool folder, so a test can see whether a refused request left a spool file behind."""

import pytest


@pytest.fixture(name="spool")
def spool_fixture(settings, tmp_path):
    """Uploads spool here (as they do next to the artifacts in production)."""
    folder = tmp_path / "spool"
    folder.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(folder)
    return folder
