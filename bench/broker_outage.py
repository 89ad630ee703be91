#!/usr/bin/env python
"""Benchmark: what a broker outage costs the API. Registration latency and stage-lookup throughput with the broker up,
stopped (connections refused) and hung (accepts connections, never answers).

One gunicorn (the project's gunicorn.conf.py: gthread, 2 processes x 4 threads, production settings) on a scratch
PostgreSQL database `registry_bench_broker` holding stage_lookup.py's data, with a private redis-server as the broker
and no Celery worker. Each round goes through the three states, each round starting with another one; in each it
makes 30 registrations one after another through the API (a 1 KB file, Bearer token) and loads
`GET /api/v1/models/{name}/stages/production/` with 32 connections for a few seconds.
After the broker comes back, registrations continue until every process publishes again (the publish pause has run
out), so "up" measures publishing, not skipping it. At the end the validation sweep sends the jobs left behind during
the outages, each once. Prints p50/p99 per state and round, the ratios down/up and hung/up with their spread over the
rounds (min..max), and lookups per second. Target: registration p50 with the broker down <= 1.5 x with it up.

    .venv/bin/python bench/broker_outage.py --quick     # 1 round, 3 s of lookups
    .venv/bin/python bench/broker_outage.py             # 3 rounds, 5 s of lookups
"""

import argparse
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from stage_lookup import MODEL, free_port, load_python, seed

ROOT = common.ROOT
VENV_BIN = Path(sys.executable).parent
DATABASE = "registry_bench_broker"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DATABASE}"
REGISTRATIONS = 30
WEB_PROCESSES = 2
RATIO_TARGET = 1.5


# --- the broker in its three states ---------------------------------------------------------------------------------


class Broker:
    """A private redis-server on a fixed port, which can be stopped, or replaced by a listener that never answers."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.redis: subprocess.Popen | None = None
        self.hung: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def up(self) -> None:
        self.redis = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("redis-server did not start")

    def down(self) -> None:
        if self.redis is not None and self.redis.poll() is None:
            self.redis.send_signal(signal.SIGKILL)
            self.redis.wait(10)
        if self.hung is not None:
            self.hung.close()
            self.hung = None

    def hang(self) -> None:
        """Accept connections (the kernel does, into a long backlog) and never read or answer."""
        self.down()
        self.hung = socket.create_server(("127.0.0.1", self.port), backlog=512)


# --- set-up: database, data, server ---------------------------------------------------------------------------------


def start_gunicorn(env: dict[str, str], workdir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    server_env = {**env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": str(WEB_PROCESSES), "GUNICORN_LOG_LEVEL": "warning"}
    process = common.start_in_group(
        [str(VENV_BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "--chdir", str(ROOT), "--access-logfile", "/dev/null"],
        env=server_env,
        cwd=ROOT,
        log=workdir / "gunicorn.log",
        ready_url=f"http://127.0.0.1:{port}/healthz",
        workers=WEB_PROCESSES,
        worker_parent="gunicorn",
        timeout=60,
    )
    return process, port


# --- measurements ---------------------------------------------------------------------------------------------------


def register(port: int, token: str, name: str) -> float:
    """One registration through the API; returns its latency in ms."""
    boundary = secrets.token_hex(16)
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{json.dumps({"flavor": "onnx"})}\r\n'.encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode() + (name.encode() * 128)[:1024] + b"\r\n",
        f"--{boundary}--\r\n".encode(),
    ]
    body = b"".join(parts)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    began = time.perf_counter()
    conn.request("POST", f"/api/v1/models/{MODEL}/versions/", body=body,
                 headers={"Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"})
    response = conn.getresponse()
    answer = response.read()
    elapsed = (time.perf_counter() - began) * 1000
    conn.close()
    if response.status != 201:
        raise SystemExit(f"registration answered {response.status}: {answer[:500]!r}")
    return elapsed


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def unsent_jobs() -> int:
    from apps.validation.models import JobStatus, ValidationJob

    return ValidationJob.objects.filter(status=JobStatus.QUEUED, enqueued_at__isnull=True).count()


def publishing_again(port: int, token: str, counter: list[int]) -> int:
    """Register until every web process publishes again (6 registrations in a row enqueued); returns how many it took."""
    from apps.validation.models import ValidationJob

    streak, made, deadline = 0, 0, time.monotonic() + 120
    while streak < 6:
        if time.monotonic() > deadline:
            raise SystemExit("the web processes did not publish again within 120 s of the broker's return")
        counter[0] += 1
        register(port, token, f"warm-{counter[0]}.onnx")
        made += 1
        latest = ValidationJob.objects.order_by("-id").first()
        streak = streak + 1 if latest.enqueued_at is not None else 0
        if not streak:
            time.sleep(0.5)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 round, 3 s of lookups per state (default: 3 rounds, 5 s)")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--seconds", type=float, help="seconds of stage-lookup load per state and round")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    seconds = args.seconds or (3 if args.quick else 5)
    if not shutil.which("redis-server"):
        raise SystemExit("redis-server is not installed")

    workdir = Path(tempfile.mkdtemp(prefix="registry-bench-broker-"))
    broker = Broker(workdir)
    server = None
    try:
        common.postgres_database("create", DATABASE)
        broker.up()
        env = common.server_environment(workdir, DATABASE_URL)
        env["CELERY_BROKER_URL"] = broker.url
        token, _, _ = seed(env, token_scope="register")  # stage_lookup's data: a model with 5 versions, v3 in production
        from django.conf import settings

        server, port = start_gunicorn(env, workdir)
        lookup = (f"/api/v1/models/{MODEL}/stages/production/", {"Authorization": f"Bearer {token}"})
        counter = [0]
        for _ in range(6):  # warm-up: every process has imported, connected and cached what it needs
            counter[0] += 1
            register(port, token, f"warm-{counter[0]}.onnx")
        load_python(port, *lookup, 1)

        print(f"broker outage benchmark: gunicorn {WEB_PROCESSES} gthread processes (gunicorn.conf.py), production settings, "
              f"PostgreSQL {DATABASE}, private redis-server; {os.cpu_count()} CPUs shared with the clients")
        print(f"publishing: BROKER_CONNECT_TIMEOUT_SECONDS={settings.BROKER_CONNECT_TIMEOUT_SECONDS:g}, "
              f"BROKER_SOCKET_TIMEOUT_SECONDS={settings.BROKER_SOCKET_TIMEOUT_SECONDS:g}, "
              f"BROKER_PUBLISH_PAUSE_SECONDS={settings.BROKER_PUBLISH_PAUSE_SECONDS:g}")
        print(f"{REGISTRATIONS} registrations (1 KB file) one after another, then {seconds:g} s of stage lookups (32 connections), "
              f"per state and round; {rounds} round(s)\n")
        def back_up() -> None:
            broker.down()
            broker.up()  # empty, as after a crash: the sweep below sends what was left behind
            took = publishing_again(port, token, counter)
            print(f"  (broker back: publishing resumed in every process after {took} registrations)")

        states = {"up": back_up, "down": broker.down, "hung": broker.hang}
        results = {state: [] for state in states}
        left_behind = 0
        for round_number in range(1, rounds + 1):
            order = list(states)[round_number - 1:] + list(states)[:round_number - 1]  # each state first in one round
            for state in order:
                if (round_number, state) != (1, "up"):
                    states[state]()
                before = unsent_jobs()
                latencies = []
                for _ in range(REGISTRATIONS):
                    counter[0] += 1
                    latencies.append(register(port, token, f"{state}-{counter[0]}.onnx"))
                load = load_python(port, *lookup, seconds)
                if load["errors"]:
                    raise SystemExit(f"{load['errors']} stage lookups failed with the broker {state}")
                unsent = unsent_jobs() - before
                left_behind += unsent
                result = {"p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99), "max": max(latencies), "rps": load["rps"]}
                results[state].append(result)
                print(f"  round {round_number} broker {state:4s}: registration p50 {result['p50']:7.1f} ms  p99 {result['p99']:7.1f} ms  "
                      f"max {result['max']:7.1f} ms  ({unsent:2d} of {REGISTRATIONS} left to the sweep)   "
                      f"stage lookups {result['rps']:7.1f} req/s  p99 {load['p99']:6.1f} ms")
        if order[-1] != "up":
            back_up()

        from apps.validation.services import validation_sweep

        waiting = unsent_jobs()
        settings.VALIDATION_RESEND_AFTER_SECONDS = 10**9  # only the jobs never sent: no worker runs, so the others all wait
        swept = validation_sweep()["sent"]
        print(f"\nafter the outages: {waiting} jobs waited for the sweep ({left_behind} registered during the outages, the rest while "
              f"a process's publish pause ran out after the broker's return); the sweep sent {swept}; {unsent_jobs()} still unsent")

        print(f"\nsummary (median over {rounds} round(s), min..max in brackets):")

        def spread(values: list[float], fmt: str) -> str:
            return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}..{max(values):{fmt}}]"

        for state in states:
            runs = results[state]
            print(f"  broker {state:4s}: registration p50 {spread([r['p50'] for r in runs], '.1f')} ms, "
                  f"p99 {spread([r['p99'] for r in runs], '.1f')} ms; stage lookups {spread([r['rps'] for r in runs], '.0f')} req/s")
        for state in ("down", "hung"):
            p50_ratios = [d["p50"] / u["p50"] for d, u in zip(results[state], results["up"], strict=True)]
            rps_ratios = [d["rps"] / u["rps"] for d, u in zip(results[state], results["up"], strict=True)]
            verdict = "PASS" if statistics.median(p50_ratios) <= RATIO_TARGET else "MISS"
            print(f"  {state}/up: registration p50 x{spread(p50_ratios, '.2f')}  (target <= {RATIO_TARGET}: {verdict}); "
                  f"stage lookups x{spread(rps_ratios, '.2f')}")
    finally:
        if server is not None:
            common.stop_group(server)
        broker.down()
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # Django was never set up
            pass
        common.postgres_database("drop", DATABASE)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
