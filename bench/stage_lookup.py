#!/usr/bin/env python
"""Benchmark: `GET /api/v1/models/{name}/stages/production/` under load, against a one-query baseline view; and
`GET /api/v1/models/{name}/aliases/champion/` (an alias at the same version), which must be as fast as the stage.

Two gunicorn servers with identical options (2 sync workers, production settings, same database):
  app       -> registry_site.wsgi:application, the real endpoint with a Bearer token
  baseline  -> bench/baseline_wsgi.py: same settings and middleware, one bare view doing one indexed query
Each is loaded with 32 concurrent connections for N seconds (wrk if installed, else a threaded Python client
on http.client keep-alive connections), alternating baseline/app per round. Prints requests/s, p50 and p99
latency for both and the ratio. Targets: app rps >= 0.7 x baseline rps, app p99 < 30 ms.

The database is SQLite in a temp dir (or the PostgreSQL database `registry_bench` with --postgres), migrated
and seeded through the project's services; everything is removed at the end. Run with the project's venv:

    .venv/bin/python bench/stage_lookup.py --quick    # 1 round of 5 s
    .venv/bin/python bench/stage_lookup.py            # 3 rounds of 20 s
"""

import argparse
import http.client
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import common
from common import POSTGRES_URL

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
MODEL = "bench-stage-lookup"
CONNECTIONS = 32
WORKERS = 2
RATIO_TARGET = 0.7
P99_TARGET_MS = 30.0
CPU_SAMPLES = 300


# --- environment, database and servers ------------------------------------------------------------------------------


def server_environment(workdir: Path, postgres: bool, conn_max_age: int | None = None) -> dict[str, str]:
    url = POSTGRES_URL if postgres else f"sqlite:///{workdir / 'bench.sqlite3'}"
    if conn_max_age is not None:
        url += f"?conn_max_age={conn_max_age}"
    return common.server_environment(workdir, url)


def seed(env: dict[str, str], token_scope: str = "read") -> tuple[str, int, dict[str, int]]:
    """Migrate; create a user, model and token, register 5 versions and promote v3 to production, all through services.

    Returns the token, the production version's number, and the queries each endpoint runs (counted in-process).
    """
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, connections
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from apps.accounts.services import api_token_create
    from apps.models.services import model_create
    from apps.validation.services import validation_run
    from apps.catalog.services import version_register

    call_command("migrate", verbosity=0, interactive=False)
    user = get_user_model().objects.create_user(username="bench", password=secrets.token_urlsafe(24))
    model = model_create(name=MODEL, actor=user, description="Stage lookup benchmark", tags=["bench"])
    _, token = api_token_create(user=user, name="bench", scope=token_scope)
    versions = []
    for number in range(1, 6):
        files, metadata = common.bench_version(number)
        versions.append(version_register(model=model, files=files, metadata=metadata, actor=user))
    # Production the way users get there: validation, a request, another user's approval.
    production = versions[2]
    validation_run(job_id=production.validation_jobs.get().pk)
    common.promote_through_review(model=model, owner=user, version=production)
    from apps.approvals.services import alias_set

    alias_set(model=model, alias="champion", version=production, actor=user, reason="the benchmark's alias")

    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {token}")
    queries = {}
    for label, url in (("app", f"/api/v1/models/{MODEL}/stages/production/"), ("alias", f"/api/v1/models/{MODEL}/aliases/champion/")):
        client.get(url)  # the first request of a token also stamps last_used_at; count the steady state
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200 and response.json()["number"] == production.number, response.content
        queries[label] = len(captured)
        began = time.process_time()  # CPU per request in this process: steadier than req/s on a shared machine
        for _ in range(CPU_SAMPLES):
            client.get(url)
        queries[f"{label}_cpu_ms"] = (time.process_time() - began) / CPU_SAMPLES * 1000
    connections.close_all()
    return token, production.number, queries


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker_count(master: int) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            count += int(stat.rsplit(")", 1)[1].split()[1]) == master
    return count


def start_gunicorn(env: dict[str, str], workdir: Path, app: str, label: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    log_path = workdir / f"gunicorn-{label}.log"
    process = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS), "--chdir", str(ROOT),
         "--pythonpath", str(BENCH), "--log-level", "warning", app],
        env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn ({label}) exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                pass
        except urllib.error.HTTPError:  # the baseline urlconf has no /healthz: a 404 from Django is an answer too
            pass
        except OSError:
            time.sleep(0.2)
            continue
        if worker_count(process.pid) == WORKERS:
            return process, port
        time.sleep(0.2)
    stop(process)
    raise SystemExit(f"gunicorn ({label}) did not answer within 60 s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# --- load generators ------------------------------------------------------------------------------------------------


def load_wrk(port: int, path: str, headers: dict[str, str], seconds: float) -> dict:
    return common.wrk(f"http://127.0.0.1:{port}{path}", headers=headers, seconds=seconds, connections=CONNECTIONS)


def load_python(port: int, path: str, headers: dict[str, str], seconds: float) -> dict:
    """32 threads, each on its own http.client connection (kept alive unless the server closes it)."""
    latencies: list[list[float]] = [[] for _ in range(CONNECTIONS)]
    failures = [0] * CONNECTIONS
    start_barrier = threading.Barrier(CONNECTIONS + 1)
    deadline = [0.0]

    def run(index: int):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        start_barrier.wait()
        while time.perf_counter() < deadline[0]:
            began = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    failures[index] += 1
                if response.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException):
                failures[index] += 1
                conn.close()
            latencies[index].append(time.perf_counter() - began)
        conn.close()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start_barrier.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    flat = sorted(x for per in latencies for x in per)
    return {
        "rps": len(flat) / elapsed,
        "p50": flat[len(flat) // 2] * 1000,
        "p99": flat[min(len(flat) - 1, int(len(flat) * 0.99))] * 1000,
        "requests": len(flat),
        "errors": sum(failures),
        "socket_errors": "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 round of 5 s (default: 3 rounds of 20 s)")
    parser.add_argument("--seconds", type=float, help="seconds of load per run")
    parser.add_argument("--rounds", type=int, help="alternating baseline/app rounds (the summary takes the median)")
    parser.add_argument("--postgres", action="store_true", help=f"use {POSTGRES_URL} instead of SQLite in a temp dir")
    parser.add_argument("--conn-max-age", type=int, metavar="SECONDS",
                        help="append ?conn_max_age=SECONDS to DATABASE_URL (default: the settings, DATABASE_CONN_MAX_AGE or 60)")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto", help="load generator (auto: wrk if installed)")
    args = parser.parse_args()
    seconds = args.seconds or (5 if args.quick else 20)
    rounds = args.rounds or (1 if args.quick else 3)
    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk"))
    if use_wrk and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install -y wrk), or use --client python")
    load = load_wrk if use_wrk else load_python
    if use_wrk:
        version = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
        client_name = (version.stdout + version.stderr).split("[")[0].strip() or "wrk"
    else:
        client_name = "Python threaded http.client"

    workdir = Path(tempfile.mkdtemp(prefix="registry-bench-stage-"))
    servers = []
    try:
        if args.postgres:
            common.postgres_database("create")
        env = server_environment(workdir, args.postgres, args.conn_max_age)
        token, production_number, queries = seed(env)
        app, app_port = start_gunicorn(env, workdir, "registry_site.wsgi:application", "app")
        servers.append(app)
        base, base_port = start_gunicorn(env, workdir, "baseline_wsgi:application", "baseline")
        servers.append(base)
        targets = {
            "baseline": (base_port, f"/baseline/models/{MODEL}/", {}),
            "app": (app_port, f"/api/v1/models/{MODEL}/stages/production/", {"Authorization": f"Bearer {token}"}),
            "alias": (app_port, f"/api/v1/models/{MODEL}/aliases/champion/", {"Authorization": f"Bearer {token}"}),
        }
        for label, (port, path, headers) in targets.items():
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
            with urllib.request.urlopen(request, timeout=10) as response:
                body = json.load(response)
            if label in ("app", "alias"):
                assert body["number"] == production_number and body["stage"] == "production", body
            load(port, path, headers, 1)  # warm-up: every worker has imported, connected and cached what it needs

        print(f"stage lookup benchmark: gunicorn {WORKERS} sync workers per server, production settings (DEBUG off), "
              f"{'PostgreSQL registry_bench' if args.postgres else 'SQLite (WAL) in a temp dir'}"
              f"{f', CONN_MAX_AGE={args.conn_max_age}' if args.conn_max_age is not None else ''}; {os.cpu_count()} CPUs shared with the load generator")
        print(f"load generator: {client_name}; {CONNECTIONS} concurrent connections, {seconds:g} s per run, {rounds} round(s)")
        print(f"queries per request (counted in-process): app {queries['app']}, alias {queries['alias']}, baseline 1")
        print(f"CPU per request (in-process, {CPU_SAMPLES} requests): app {queries['app_cpu_ms']:.2f} ms, alias {queries['alias_cpu_ms']:.2f} ms")
        results = {"baseline": [], "app": [], "alias": []}
        for round_number in range(1, rounds + 1):
            for label, (port, path, headers) in targets.items():
                result = load(port, path, headers, seconds)
                results[label].append(result)
                print(f"  round {round_number} {label:8s}: {result['rps']:8.1f} req/s  p50 {result['p50']:6.1f} ms  "
                      f"p99 {result['p99']:6.1f} ms  ({result['requests']} requests, {result['errors']} non-2xx"
                      f"{', socket errors: ' + result['socket_errors'] if result['socket_errors'] else ''})")

        summary = {label: {key: statistics.median(r[key] for r in runs) for key in ("rps", "p50", "p99")} for label, runs in results.items()}
        ratio = summary["app"]["rps"] / summary["baseline"]["rps"]
        p99 = summary["app"]["p99"]
        print(f"\nsummary ({'median of ' + str(rounds) + ' rounds' if rounds > 1 else 'one round'}):")
        print(f"  {'':44s}{'req/s':>9s}{'p50 ms':>9s}{'p99 ms':>9s}")
        print(f"  {'baseline: bare view, 1 indexed query':44s}{summary['baseline']['rps']:9.1f}{summary['baseline']['p50']:9.1f}{summary['baseline']['p99']:9.1f}")
        print(f"  {'app: GET /api/v1/models/{name}/stages/production/':44s}{summary['app']['rps']:9.1f}{summary['app']['p50']:9.1f}{summary['app']['p99']:9.1f}")
        print(f"  {'alias: GET /api/v1/models/{name}/aliases/champion/':44s}{summary['alias']['rps']:9.1f}{summary['alias']['p50']:9.1f}{summary['alias']['p99']:9.1f}")
        print(f"  ratio app/baseline req/s: {ratio:.2f}   target >= {RATIO_TARGET}  {'PASS' if ratio >= RATIO_TARGET else 'MISS'}")
        alias_ratio = summary["alias"]["rps"] / summary["app"]["rps"]
        print(f"  ratio alias/stage req/s: {alias_ratio:.2f}   target >= 0.9 (the same speed)  {'PASS' if alias_ratio >= 0.9 else 'MISS'}")
        print(f"  app p99: {p99:.1f} ms          target < {P99_TARGET_MS:g} ms  {'PASS' if p99 < P99_TARGET_MS else 'MISS'}")
        print(f"  (Little's law: {CONNECTIONS} connections / {summary['app']['rps']:.0f} req/s = "
              f"{CONNECTIONS / summary['app']['rps'] * 1000:.1f} ms mean latency; p99 < {P99_TARGET_MS:g} ms at this concurrency "
              f"needs more than {CONNECTIONS / P99_TARGET_MS * 1000:.0f} req/s)")
        if any(r["errors"] for runs in results.values() for r in runs):
            raise SystemExit("some requests failed (non-2xx); the figures above are not valid")
    finally:
        for process in servers:
            stop(process)
        if args.postgres:
            common.postgres_database("drop")
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
