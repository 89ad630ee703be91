"""Project-level guarantees: migrations committed, production settings pass Django's deploy checks, demo data seeds."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "module, variables, message",
    [
        ("local", {"DJANGO_DEBUG": "ture"}, "DJANGO_DEBUG must be true or false, got 'ture'"),
        ("base", {"LOGIN_THROTTLING": "flase"}, "LOGIN_THROTTLING must be true or false, got 'flase'"),
        ("production", {"DJANGO_SECURE_SSL_REDIRECT": "of", "DJANGO_SECRET_KEY": "x7" * 30}, "DJANGO_SECURE_SSL_REDIRECT must be true or false, got 'of'"),
        ("base", {"API_TOKEN_CACHE_SECONDS": "-1"}, "API_TOKEN_CACHE_SECONDS"),
    ],
)
def test_a_misspelt_setting_stops_start_up_naming_the_variable(module, variables, message):
    env = {**os.environ, **variables}
    result = subprocess.run([sys.executable, "-c", f"import registry_site.settings.{module}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and f"ImproperlyConfigured: {message}" in result.stderr


@pytest.mark.django_db
def test_migrations_match_the_models():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_production_settings_pass_the_deploy_checks(tmp_path):
    from apps.signing.keys import create_key_file

    create_key_file(str(tmp_path / "signing.pem"))  # without one, signing.W001 warns that manifests go unsigned
    env = {
        "MANIFEST_SIGNING_KEY_FILE": str(tmp_path / "signing.pem"),
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "registry_site.settings.production",
        "DJANGO_SECRET_KEY": "x7" * 30 + "-not-a-real-secret",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        "ARTIFACT_S3_BUCKET": "artifacts",
    }
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_settings_refuse_a_missing_secret_key():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "registry_site.settings.production", "DJANGO_SECRET_KEY": ""}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "DJANGO_SECRET_KEY" in result.stderr


@pytest.mark.django_db
def test_the_demo_seeds_models_with_one_in_production_and_is_idempotent(capsys):
    from apps.versions.models import ModelVersion

    with pytest.raises(CommandError, match="published passwords"):
        call_command("seed_demo")
    call_command("seed_demo", "--i-know-this-sets-known-passwords")
    call_command("seed_demo", "--i-know-this-sets-known-passwords")
    assert "scientist" in capsys.readouterr().out
    assert ModelVersion.objects.filter(stage="production").count() == 1
    assert ModelVersion.objects.filter(model__name="sentiment-classifier").count() == 3
    safetensors = ModelVersion.objects.get(stage="production").artifacts.get(path="model.safetensors")
    assert safetensors.size > 8


def test_the_code_has_no_undefined_names_or_unused_imports():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
