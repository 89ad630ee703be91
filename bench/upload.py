#!/usr/bin/env python
"""Benchmark: registering a big file through the API (upload) and downloading it again.

Baselines measured in the same run, on the same file:
  upload   -> `sha256sum FILE` throughput   (target: API registration >= 0.8 of it)
  download -> `cp FILE COPY` throughput     (target: API download >= 1 GB/s)
  memory   -> the gunicorn worker's peak RSS growth during each upload (target: < 50 MB, flat across sizes)

Runs gunicorn (1 sync worker, production settings, artifacts on local disk in a temp dir) on a loopback
port against its own SQLite database in a temp dir (or the PostgreSQL database `registry_bench` with
--postgres), and removes everything at the end. Run with the project's venv:

    .venv/bin/python bench/upload.py --quick      # 100 MiB only
    .venv/bin/python bench/upload.py              # 100 MiB and 1 GiB
"""

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import common
from common import POSTGRES_URL

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
MiB = 1024 * 1024
MODEL = "bench-upload"

UPLOAD_RATIO_TARGET = 0.8
RSS_GROWTH_TARGET_MB = 50
DOWNLOAD_TARGET_GBPS = 1.0


# --- environment, database and server -------------------------------------------------------------------------------


def server_environment(workdir: Path, postgres: bool) -> dict[str, str]:
    (workdir / "artifacts").mkdir()
    (workdir / "upload-tmp").mkdir()
    url = POSTGRES_URL if postgres else f"sqlite:///{workdir / 'bench.sqlite3'}"
    # Uploads spool on the same file system as ARTIFACT_ROOT: the blob is renamed, not copied.
    return common.server_environment(workdir, url, FILE_UPLOAD_TEMP_DIR=str(workdir / "upload-tmp"))


def seed(env: dict[str, str]) -> str:
    """Migrate and create a user, a model and an API token through the project's services; returns the token."""
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connections

    from apps.accounts.models import TokenScope

    from apps.accounts.services import api_token_create
    from apps.models.services import model_create

    call_command("migrate", verbosity=0, interactive=False)
    user = get_user_model().objects.create_user(username="bench", password=secrets.token_urlsafe(24))
    model_create(name=MODEL, actor=user, description="Upload benchmark")
    _, token = api_token_create(user=user, name="bench", scope=TokenScope.REGISTER)
    connections.close_all()
    return token


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(env: dict[str, str], workdir: Path, *, workers: int, extra: list[str] = ()) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(workdir / f"gunicorn-{port}.log", "wb")
    process = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--chdir", str(ROOT),
         "--log-level", "warning", *extra, "registry_site.wsgi:application"],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode}:\n{(workdir / f'gunicorn-{port}.log').read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
                if response.status == 200 and len(worker_pids(process.pid)) == workers:
                    return process, base
        except OSError:
            pass
        time.sleep(0.2)
    stop(process)
    raise SystemExit("gunicorn did not answer /healthz within 60 s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def worker_pids(master: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                pids.append(int(entry.name))
    return pids


# --- measurements ---------------------------------------------------------------------------------------------------


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class PeakRss:
    """The worker's peak RSS growth during a block: VmHWM (reset through clear_refs) and a 10 ms VmRSS sampler."""

    def __init__(self, pid: int):
        self.pid = pid

    def __enter__(self):
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self.start_kb = status_kb(self.pid, "VmRSS")
        self.sampled_kb = self.start_kb
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while self._running:
            self.sampled_kb = max(self.sampled_kb, status_kb(self.pid, "VmRSS"))
            time.sleep(0.01)

    def __exit__(self, *exc):
        self._running = False
        self._thread.join()
        peak = self.sampled_kb
        if self.hwm_reset:
            peak = max(peak, status_kb(self.pid, "VmHWM"))
        self.growth_mb = (peak - self.start_kb) * 1024 / 1e6
        self.method = "VmHWM after clear_refs + VmRSS sampling" if self.hwm_reset else "VmRSS sampling every 10 ms"


def make_file(path: Path, size: int) -> None:
    """Random bytes (incompressible, no dedup between sizes), written in 8 MiB chunks."""
    with open(path, "wb") as out:
        left = size
        while left:
            chunk = min(left, 8 * MiB)
            out.write(os.urandom(chunk))
            left -= chunk


def timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, result.stdout


def best_of(runs: int, command: list[str], cleanup=None) -> tuple[float, str]:
    best = None
    for _ in range(runs):
        elapsed, out = timed(command)
        if cleanup:
            cleanup()
        if best is None or elapsed < best[0]:
            best = (elapsed, out)
    return best


def curl(*args: str) -> tuple[int, float, float]:
    """Run curl; returns (HTTP status, time_total, bytes transferred) from its -w report."""
    result = subprocess.run(
        ["curl", "-sS", "-H", "Expect:", "-w", "%{http_code} %{time_total} %{size_upload} %{size_download}", *args],
        check=True, capture_output=True, text=True,
    )
    code, total, up, down = result.stdout.split()[-4:]
    return int(code), float(total), max(float(up), float(down))


def mbps(size: int, seconds: float) -> float:
    return size / seconds / 1e6


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def register(base: str, token: str, path: Path, name: str, digest: str, response_path: Path) -> tuple[float, dict]:
    metadata = json.dumps({"artifacts": [{"path": name, "sha256": digest}], "description": "benchmark upload"})
    code, seconds, sent = curl(
        "-o", str(response_path), "-H", f"Authorization: Bearer {token}",
        "-F", f"files=@{path};filename={name};type=application/octet-stream",
        "--form-string", f"metadata={metadata}",
        f"{base}/api/v1/models/{MODEL}/versions/",
    )
    body = json.loads(response_path.read_text() or "{}")
    if code != 201:
        raise SystemExit(f"registration answered {code}: {body}")
    return seconds, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 MiB only (default: 100 MiB and 1 GiB)")
    parser.add_argument("--postgres", action="store_true", help=f"use {POSTGRES_URL} instead of SQLite in a temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (files, logs) for inspection")
    args = parser.parse_args()
    for tool in ("curl", "sha256sum", "cp"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed on PATH")

    sizes = [100 * MiB] if args.quick else [100 * MiB, 1024 * MiB]
    workdir = Path(tempfile.mkdtemp(prefix="registry-bench-upload-"))
    server = None
    try:
        if args.postgres:
            common.postgres_database("create")
        env = server_environment(workdir, args.postgres)
        token = seed(env)
        server, base = start_gunicorn(env, workdir, workers=1, extra=["--timeout", "3600"])
        worker = worker_pids(server.pid)[0]
        print(f"upload benchmark: gunicorn 1 sync worker (pid {worker}), production settings, "
              f"{'PostgreSQL registry_bench' if args.postgres else 'SQLite in ' + str(workdir)}, artifacts on local disk")
        print(f"machine: {os.cpu_count()} CPUs; files are random bytes in {workdir}; MB = 10^6 bytes")

        # Warm-up: imports, upload handler, storage and DB paths are loaded before anything is measured.
        warm = workdir / "warm.bin"
        make_file(warm, 64 * 1024)
        register(base, token, warm, "warm.bin", subprocess.check_output(["sha256sum", str(warm)], text=True).split()[0], workdir / "r.json")

        results = []
        for size in sizes:
            label = f"{size // MiB} MiB" if size < 1024 * MiB else f"{size // (1024 * MiB)} GiB"
            hashes, uploads, growths = [], [], []
            for run in (1, 2):  # two different files of the same size: a second upload of the same bytes would dedup
                path = workdir / f"model-{size // MiB}-{run}.bin"
                make_file(path, size)
                hash_seconds, out = timed(["sha256sum", str(path)])
                digest = out.split()[0]
                with PeakRss(worker) as rss:
                    upload_seconds, body = register(base, token, path, path.name, digest, workdir / "r.json")
                stored = body["artifacts"][0]
                assert stored["sha256"] == digest and stored["size"] == size, body
                hashes.append(hash_seconds)
                uploads.append(upload_seconds)
                growths.append(rss.growth_mb)
                if run == 1:
                    path.unlink()  # keep the disk footprint to one file per size (the blob lives on in artifacts/)
            hash_seconds, upload_seconds, growth = min(hashes), min(uploads), max(growths)
            ratio = mbps(size, upload_seconds) / mbps(size, hash_seconds)
            print(f"\nupload {label}:")
            print(f"  baseline sha256sum     {mbps(size, hash_seconds):8.0f} MB/s  ({hash_seconds:.3f} s, best of 2 files)")
            print(f"  API register (curl -F) {mbps(size, upload_seconds):8.0f} MB/s  ({upload_seconds:.3f} s, best of 2 files; "
                  f"other {max(uploads):.3f} s)")
            print(f"  ratio                  {ratio:8.2f}        target >= {UPLOAD_RATIO_TARGET}  {verdict(ratio >= UPLOAD_RATIO_TARGET)}")
            print(f"  worker peak RSS growth {growth:8.1f} MB     target < {RSS_GROWTH_TARGET_MB} MB  "
                  f"{verdict(growth < RSS_GROWTH_TARGET_MB)}  (larger of 2 uploads; {rss.method})")
            results.append((label, size, path, body["number"], growth))

        label, size, path, number, _ = results[-1]
        copy = workdir / "copy.bin"
        cp_seconds, _ = best_of(2, ["cp", str(path), str(copy)], cleanup=lambda: copy.unlink())
        url = f"{base}/api/v1/models/{MODEL}/versions/{number}/artifacts/{path.name}"
        curl("-o", "/dev/null", "-H", f"Authorization: Bearer {token}", url)  # warm the path once
        code, download_seconds, received = curl("-o", "/dev/null", "-H", f"Authorization: Bearer {token}", url)
        if code != 200 or int(received) != size:
            raise SystemExit(f"download answered {code} with {received} bytes, expected 200 and {size}")
        gbps = mbps(size, download_seconds) / 1000
        print(f"\ndownload {label}:")
        print(f"  baseline cp            {mbps(size, cp_seconds):8.0f} MB/s  ({cp_seconds:.3f} s, best of 2)")
        print(f"  API download (curl)    {mbps(size, download_seconds):8.0f} MB/s  ({download_seconds:.3f} s, second of 2)")
        print(f"  ratio to cp            {mbps(size, download_seconds) / mbps(size, cp_seconds):8.2f}")
        print(f"  absolute               {gbps:8.2f} GB/s   target >= {DOWNLOAD_TARGET_GBPS} GB/s  {verdict(gbps >= DOWNLOAD_TARGET_GBPS)}")
        if len(results) > 1:
            growths = [g for *_, g in results]
            print(f"\nRSS growth across sizes: {', '.join(f'{r[0]} {r[4]:.1f} MB' for r in results)} "
                  f"(flat: {verdict(max(growths) - min(growths) < 10)})")
    finally:
        if server is not None:
            stop(server)
        if args.postgres:
            common.postgres_database("drop")
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
