"""Real Celery worker processes for tests: they share the test's database, artifact root and queue."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

from registry_site.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def producing_to(broker_url: str):
    """Point this process's Celery producer at another broker for the duration."""
    previous = celery_app.conf.broker_url

    def switch(url):
        celery_app.conf.broker_url = url
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    switch(broker_url)
    try:
        yield
    finally:
        switch(previous)


class Log:
    """Everything a process prints, read as it comes, so the test can wait for a line while the process runs."""

    def __init__(self, process: subprocess.Popen):
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self.reader.start()

    def _read(self, stream) -> None:
        for line in iter(stream.readline, b""):
            self.lines.append(line.decode(errors="replace"))

    def count(self, *parts: str) -> int:
        """Lines that contain every one of `parts`."""
        return sum(all(part in line for part in parts) for line in list(self.lines))

    def text(self) -> str:
        return "".join(self.lines)


class Worker:
    def __init__(self, broker_url: str, *, extra_args: tuple[str, ...] = (), **env):
        self.extra_args = list(extra_args)  # e.g. --loglevel=WARNING (later options win)
        db = connection.settings_dict
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "registry_site.settings.test",
            "TEST_DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "ARTIFACT_ROOT": str(settings.ARTIFACT_ROOT),
            "CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
            "CELERY_BROKER_URL": broker_url,
            **{key: str(value) for key, value in env.items()},
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> "Worker":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "registry_site", "worker", "--concurrency=1", "--loglevel=INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-Q", settings.CELERY_TASK_DEFAULT_QUEUE, *self.extra_args],
            cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once, as a crash or an OOM kill would."""
        if self.process:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # the group outlives a main process killed on its own
            except ProcessLookupError:
                pass
            self.process.wait(10)

    def kill_main_process(self) -> None:
        """SIGKILL only the worker's main process, leaving its pool children to fend for themselves."""
        self.process.kill()
        self.process.wait(10)

    def pool_children(self) -> list[int]:
        return [pid for pid, parent in _processes() if parent == self.process.pid]

    def stop(self) -> str:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.stdout.read().decode(errors="replace") if self.process else ""


class RedisServer:
    """A private redis-server on a free port, so a test can take its broker down and bring it back."""

    def __init__(self):
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        binary = shutil.which("redis-server")
        self.process = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def _processes():
    """(pid, parent pid) of every live process (zombies excluded), from /proc."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    state, parent = handle.read().rsplit(")", 1)[1].split()[:2]
            except (OSError, ValueError):
                continue
            if state != "Z":
                yield int(entry), int(parent)


def alive(pid: int) -> bool:
    return any(live == pid for live, _ in _processes())


def wait_for(predicate, timeout: float = 60, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"gave up after {timeout}s waiting for {predicate.__doc__ or predicate}")
