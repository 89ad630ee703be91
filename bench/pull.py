#!/usr/bin/env python
"""Benchmark: a deployer fetching a whole version, the real all-MiniLM-L6-v2 folder (13 files, 87 MiB).

Registers the folder with `model-registry register`, then measures, each as the calls the server logged and the
wall time of the client process:
  pull cold        `model-registry pull NAME/1 -o DIR` with an empty cache     (1 manifest + 1 call per file)
  pull again       the same command, the folder already in place               (1 call)
  pull other dir   into a new folder, the cache warm                           (1 call)
  archive zip/tar  `GET .../versions/1/archive` read to the end                (1 call)
  CLI start-up     `model-registry --help`, best of 10
  memory           the web worker's peak RSS growth while it sends each archive (flat: files are streamed)
Baselines in the same run: `cp -r` of the folder and `sha256sum` of its files.

Runs gunicorn (gunicorn.conf.py: one gthread worker, production settings, artifacts on local disk) on a loopback port against
a fresh SQLite database in a temp dir, and removes everything at the end:

    .venv/bin/python bench/pull.py
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import common
from upload import PeakRss, worker_pids

MODEL = "all-minilm-l6-v2"


def seed(workdir: Path) -> str:
    """Migrate, create a user, the model and a register-scope token through the project's services; returns the token."""
    common.django_in(workdir)
    from django.contrib.auth import get_user_model
    from django.db import connections

    from apps.accounts.models import TokenScope
    from apps.accounts.services import api_token_create
    from apps.models.services import model_create

    user = get_user_model().objects.create_user(username="deployer", password=os.urandom(12).hex())
    model_create(name=MODEL, actor=user)
    _, token = api_token_create(user=user, name="bench", scope=TokenScope.REGISTER)
    connections.close_all()
    return token


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return time.perf_counter() - started, done.stdout


def main() -> None:
    sys.path.insert(0, str(common.ROOT))
    from tests.minilm import folder_files, minilm_folder

    folder = minilm_folder()
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    workdir = Path(tempfile.mkdtemp(prefix="bench-pull-"))
    process = None
    try:
        token = seed(workdir)
        port = common.free_port()
        env = common.server_environment(workdir, f"sqlite:///{workdir / 'bench.sqlite3'}", PORT=str(port), HOST="127.0.0.1", WEB_CONCURRENCY="1")
        log = workdir / "gunicorn.log"
        process = common.start_in_group([str(common.VENV_BIN / "gunicorn"), "-c", str(common.ROOT / "gunicorn.conf.py")], env=env, cwd=common.ROOT,
                                        log=log, ready_url=f"http://127.0.0.1:{port}/healthz", workers=1, worker_parent="gunicorn")
        cli = [str(common.VENV_BIN / "model-registry")]
        client_env = {**os.environ, "REGISTRY_URL": f"http://127.0.0.1:{port}", "REGISTRY_TOKEN": token, "REGISTRY_CACHE_DIR": str(workdir / "cache")}

        def calls_during(step) -> tuple[float, int]:
            before = len(log.read_text().splitlines())
            seconds = step()
            time.sleep(0.2)  # the access log line follows the answer
            return seconds, sum(" /api/v1/" in line for line in log.read_text().splitlines()[before:])

        rows = []
        seconds, _ = timed([*cli, "register", MODEL, str(folder)], client_env)
        rows.append(("register (CLI)", seconds, 2))
        for label, target in (("pull cold", "cold"), ("pull again", "cold"), ("pull other dir, warm cache", "warm")):
            seconds, calls = calls_during(lambda target=target: timed([*cli, "pull", f"{MODEL}/1", "-o", str(workdir / target)], client_env)[0])
            rows.append((label, seconds, calls))
        assert folder_files(workdir / "cold") == folder_files(folder) == folder_files(workdir / "warm")
        growths = []
        for kind in ("zip", "tar"):
            def archive(kind=kind) -> float:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/models/{MODEL}/versions/1/archive?format={kind}",
                                                 headers={"Authorization": f"Bearer {token}"})
                started = time.perf_counter()
                with urllib.request.urlopen(request) as answer:
                    while answer.read(1024 * 1024):
                        pass
                return time.perf_counter() - started
            with PeakRss(worker_pids(process.pid)[0]) as rss:
                seconds, calls = calls_during(archive)
            rows.append((f"archive {kind}", seconds, calls))
            growths.append(rss.growth_mb)

        started = time.perf_counter()
        shutil.copytree(folder, workdir / "copied")
        rows.append(("baseline: cp -r", time.perf_counter() - started, 0))
        started = time.perf_counter()
        subprocess.run(["sha256sum", *[str(p) for p in folder.rglob("*") if p.is_file()]], capture_output=True, check=True)
        rows.append(("baseline: sha256sum", time.perf_counter() - started, 0))
        startup = min(timed([*cli, "--help"], client_env)[0] for _ in range(10))

        print(f"\nall-MiniLM-L6-v2: 13 files, {size / 2**20:.0f} MiB; load {common.machine_load()}")
        print(f"{'step':<30} {'seconds':>8} {'MB/s':>8} {'API calls':>10}")
        for label, seconds, calls in rows:
            print(f"{label:<30} {seconds:8.2f} {size / 1e6 / seconds:8.0f} {calls:>10}")
        print(f"{'CLI start-up (--help, best of 10)':<30} {startup * 1000:7.0f} ms")
        print(f"web worker's peak RSS growth while it sends the archive: zip {growths[0]:.1f} MB, tar {growths[1]:.1f} MB ({rss.method})")
        print(json.dumps({"rows": rows, "startup_ms": round(startup * 1000), "archive_rss_growth_mb": growths}))
    finally:
        if process is not None:
            common.stop_group(process)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
