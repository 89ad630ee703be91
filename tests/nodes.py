"""Processes as production runs them, for tests: gunicorn with gunicorn.conf.py, Celery workers and beat, all on the
production settings and configured by environment variables. Everything listens and connects on 127.0.0.1 only.
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .validation.workers import free_port

ROOT = Path(__file__).resolve().parents[1]
SECRET_KEY = "test-cluster-secret-key-shared-by-every-node-0123456789abcdef"  # the same on every node, as production needs


def production_env(*, database_url: str, static_root: Path, **extra) -> dict[str, str]:
    """The environment of a production process (web, worker or beat) on loopback, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "DATABASE_", "ARTIFACT_", "CELERY_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "registry_site.settings.production",
            "DJANGO_SECRET_KEY": SECRET_KEY,
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,registry.test",
            "DJANGO_STATIC_ROOT": str(static_root),
            "DATABASE_URL": database_url,
            "HOST": "127.0.0.1",
            "WEB_CONCURRENCY": "1",
            "GUNICORN_THREADS": "2",
            "LOG_LEVEL": "WARNING",
            **{key: str(value) for key, value in extra.items()},
        }
    )
    return env


def collect_static(env: dict[str, str]) -> None:
    """The production static storage needs its manifest, as after `collectstatic` in a deployment."""
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


class WebNode:
    def __init__(self, env: dict[str, str], log_path: Path):
        self.port = free_port()
        self.env = {**env, "PORT": str(self.port)}
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> "WebNode":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py")],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                self.request("GET", "/healthz", timeout=2)  # any answer: the server is up
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not start; log:\n{self.log()[-3000:]}")

    def request(self, method: str, path: str, *, body: bytes | None = None, headers: dict | None = None, timeout: float = 30) -> Answer:
        """One HTTP request; a dropped connection or no answer within `timeout` raises OSError."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return Answer(response.status, {key.lower(): value for key, value in response.getheaders()}, response.read())
        finally:
            connection.close()

    def log(self) -> str:
        return _read(self.log_path)

    def stop(self) -> None:
        _stop(self.process)


class CeleryNode:
    """`celery -A registry_site worker` (or `beat`) in a process group of its own, logging to a file."""

    def __init__(self, env: dict[str, str], log_path: Path, *arguments: str):
        self.env, self.log_path, self.arguments = env, log_path, arguments
        self.process: subprocess.Popen | None = None

    def start(self) -> "CeleryNode":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "registry_site", *self.arguments],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        return self

    def log(self) -> str:
        return _read(self.log_path)

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once, as a crash or an OOM kill would."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        _stop(self.process)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _stop(process: subprocess.Popen | None) -> None:
    if process and process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
