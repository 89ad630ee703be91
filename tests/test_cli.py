"""The command line client against a live server: what a training pipeline runs."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from apps.accounts.models import TokenScope

from apps.accounts.services import api_token_create
from apps.models.services import model_create
from apps.versions.models import ModelVersion
from registry_cli.main import main
from tests.nodes import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cli(live_server, owner):
    _, token = api_token_create(user=owner, name="pipeline", scope=TokenScope.FULL)
    environ = {"REGISTRY_URL": live_server.url, "REGISTRY_TOKEN": token}

    def run(*argv, env=None):
        return main(list(argv), environ=env if env is not None else environ)

    return run


def test_a_pipeline_creates_a_model_registers_a_folder_and_downloads_a_file(cli, owner, tmp_path, capsys):
    export = tmp_path / "export"
    (export / "tokenizer").mkdir(parents=True)
    weights = bytes(range(256)) * 5000
    (export / "model.bin").write_bytes(weights)
    (export / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"datasets": [{"name": "imdb", "uri": "s3://d/imdb", "digest": "v1", "role": "training"}]}))

    assert cli("create-model", "churn", "--description", "Churn") == 0
    assert cli("register", "churn", str(export), "--metadata", str(meta), "--metric", "auc=0.91", "--param", "lr=0.001", "--flavor", "pytorch") == 0
    capsys.readouterr()
    version = ModelVersion.objects.get(model__name="churn")
    assert {a.path: a.sha256 for a in version.artifacts.all()} == {
        "model.bin": hashlib.sha256(weights).hexdigest(),
        "tokenizer/vocab.txt": hashlib.sha256(b"a\nb\n").hexdigest(),
    }
    assert version.hyperparameters == {"lr": 0.001} and version.metrics.get().value == 0.91
    assert version.dataset_links.get().dataset.uri == "s3://d/imdb"

    target = tmp_path / "downloaded.bin"
    assert cli("download", "churn", "1", "model.bin", "-o", str(target)) == 0
    assert target.read_bytes() == weights
    capsys.readouterr()
    assert cli("get", "churn", "1") == 0
    assert json.loads(capsys.readouterr().out)["artifacts"][0]["path"] == "model.bin"


def test_errors_are_one_line_with_what_to_do(cli, owner, tmp_path, capsys):
    model_create(name="churn", actor=owner)
    (tmp_path / "a.bin").write_bytes(b"x")
    assert cli("register", "churn", str(tmp_path / "a.bin"), env={"REGISTRY_URL": "", "REGISTRY_TOKEN": ""}) == 1
    assert "Set REGISTRY_URL" in capsys.readouterr().err
    assert cli("get", "churn", "1", env={"REGISTRY_URL": "http://127.0.0.1:9", "REGISTRY_TOKEN": "x"}) == 1
    assert "Could not reach the registry" in capsys.readouterr().err
    assert cli("register", "churn", str(tmp_path / "missing.bin")) == 1
    assert "neither a file nor a folder" in capsys.readouterr().err
    assert cli("register", "churn", str(tmp_path / "a.bin"), "--metric", "auc=high") == 1
    assert "must be a number" in capsys.readouterr().err
    assert cli("get", "no-such-model", "1") == 1
    assert "404" in capsys.readouterr().err
    assert not ModelVersion.objects.exists()


def test_a_revoked_token_is_explained(live_server, owner, capsys):
    assert main(["get", "churn", "--stage", "production"], environ={"REGISTRY_URL": live_server.url, "REGISTRY_TOKEN": "mr_wrong"}) == 1
    error = capsys.readouterr().err
    assert "401" in error and "REGISTRY_TOKEN" in error


def test_the_cli_starts_without_django_celery_or_the_server_code():
    # Start-up time is what a deploy script pays per call: keep the server's imports out (no timed assertion).
    probe = "import sys; from registry_cli.main import parser; parser(); print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    heavy = [name for name in loaded if name.split(".")[0] in ("django", "celery", "kombu", "rest_framework", "boto3", "botocore", "registry_site", "apps")]
    assert heavy == []
    answer = subprocess.run([str(Path(sys.executable).with_name("model-registry")), "--help"], capture_output=True, text=True)
    assert answer.returncode == 0 and "create-model" in answer.stdout and "register" in answer.stdout
