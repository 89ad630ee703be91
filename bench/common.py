"""What the benchmark scripts share: the environment of a benchmark server, the scratch PostgreSQL database,
and setting Django up in-process on a throwaway SQLite database."""

import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/registry_bench"


def server_environment(workdir: Path, database_url: str, **extra: str) -> dict[str, str]:
    """Production settings (DEBUG off, as deployed) for a gunicorn on loopback: TLS redirect off, artifacts in `workdir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARTIFACT_S3_", "DJANGO_", "DATABASE_URL"))}
    env.update(
        DJANGO_SETTINGS_MODULE="registry_site.settings.production",
        DJANGO_SECRET_KEY="bench-" + secrets.token_urlsafe(60),
        DJANGO_SECURE_SSL_REDIRECT="false",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_STATIC_ROOT=str(workdir / "static"),
        DATABASE_URL=database_url,
        ARTIFACT_ROOT=str(workdir / "artifacts"),
        CELERY_BROKER_URL="memory://localhost/",  # validation jobs are enqueued in-process and never run: no worker, nothing under var/
        LOG_LEVEL="WARNING",
        PYTHONDONTWRITEBYTECODE="1",
        **extra,
    )
    (workdir / "static").mkdir(exist_ok=True)
    return env


def postgres_database(action: str) -> None:
    """Drop the scratch database `registry_bench`, and create it again when `action` is "create"."""
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS registry_bench WITH (FORCE)")
        if action == "create":
            conn.execute("CREATE DATABASE registry_bench")


def django_in(workdir: Path, **extra: str) -> None:
    """Set Django up in this process on a fresh SQLite database and artifact folder in `workdir`, migrated."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="registry_site.settings.local",
        DJANGO_DEBUG="false",
        DJANGO_STATIC_ROOT=str(workdir),
        DATABASE_URL=f"sqlite:///{workdir / 'bench.sqlite3'}",
        ARTIFACT_ROOT=str(workdir / "artifacts"),
        CELERY_BROKER_URL="memory://localhost/",
        LOG_LEVEL="WARNING",
        **extra,
    )
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
