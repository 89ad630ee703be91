"""What the benchmark scripts share: the environment of a benchmark server, the scratch PostgreSQL database,
and setting Django up in-process on a throwaway SQLite database."""

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
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


def postgres_database(action: str, name: str = "registry_bench") -> None:
    """Drop the scratch database `name`, and create it again when `action` is "create"."""
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if action == "create":
            conn.execute(f'CREATE DATABASE "{name}"')


def django_in(workdir: Path, database_url: str | None = None, **extra: str) -> None:
    """Set Django up in this process on `database_url` (default: a fresh SQLite database in `workdir`), migrated."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="registry_site.settings.local",
        DJANGO_DEBUG="false",
        DJANGO_STATIC_ROOT=str(workdir),
        DATABASE_URL=database_url or f"sqlite:///{workdir / 'bench.sqlite3'}",
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


def bench_version(number: int, *, weight_floats: int = 1024) -> tuple[list, object]:
    """The files and document of benchmark version `number`, for `version_register`: three files (a config, safetensors
    weights, a vocabulary) and a full document (description, flavor, tags, hyperparameters, metrics, a dataset, code)."""
    import json

    from apps.models.management.commands.seed_demo import safetensors_bytes
    from apps.versions.services import incoming_from_bytes

    try:
        from apps.versions.document import metadata_from_dict  # the declared version document
    except ImportError:  # before it replaced apps.versions.metadata
        from apps.versions.metadata import metadata_from_dict

    files = {
        "config.json": json.dumps({"hidden_size": 64 * number}).encode(),
        "weights/model.safetensors": safetensors_bytes({"w": ("F32", [weight_floats], os.urandom(4 * weight_floats))}),
        "tokenizer/vocab.txt": b"\n".join(b"tok%d" % i for i in range(200)),
    }
    metadata = metadata_from_dict({
        "description": f"Version {number}",
        "flavor": "pytorch",
        "tags": ["nlp", f"run-{number}"],
        "hyperparameters": {"lr": 0.001 * number, "epochs": 3},
        "metrics": {"accuracy": 0.5 + number / 1000, "f1": 0.45 + number / 1000, "loss": 0.5 / number},
        "datasets": [{"name": "imdb", "uri": "s3://data/imdb", "digest": "sha256:" + "ab" * 32, "role": "training"}],
        "code": {"repository": "https://git.example/model.git", "commit": f"{number:040x}", "branch": "main"},
    })
    return [incoming_from_bytes(path, data) for path, data in files.items()], metadata


# --- servers started in their own process group, the CPU they use, and wrk ---------------------------------------------
# Used by vs_mlflow.py: every server is the leader of a new session, so stopping it stops whatever it forked (gunicorn
# workers, MLflow's gunicorn under its CLI) and its CPU time is the sum over that group.

VENV_BIN = Path(sys.executable).parent
BENCH = ROOT / "bench"
WRK_INSTALL_HINT = "wrk is not installed: apt-get install -y wrk (Debian/Ubuntu), or build it from https://github.com/wg/wrk"

# Passed with -c so gunicorn does not read the project's gunicorn.conf.py (gthread, 4 threads, access log to stdout):
# these benchmarks compare sync workers, as the MLflow comparison prescribes.
GUNICORN_SYNC_CONFIG = 'worker_class = "sync"\naccesslog = None\nloglevel = "warning"\ncontrol_socket_disable = True\n'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def group_processes(pgid: int) -> list[tuple[int, int, float]]:
    """(pid, parent pid, user+system CPU seconds) of every live process in the process group `pgid`."""
    tick = os.sysconf("SC_CLK_TCK")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the command: state, ppid, pgrp, session, ..., utime (12), stime (13)
            found.append((int(entry.name), int(fields[1]), (int(fields[11]) + int(fields[12])) / tick))
    return found


def group_cpu_seconds(pgid: int) -> float:
    return sum(cpu for _, _, cpu in group_processes(pgid))


def wait_idle(pgid: int, *, interval: float = 0.5, limit: float = 180) -> float:
    """Wait until the group uses (almost) no CPU for `interval` seconds; return the seconds waited.

    wrk stops with up to one request per connection still queued in the server's listen backlog, and a sync worker
    serves each of them even though the client is gone: without this, a slow read steals the next run's CPU."""
    began = time.monotonic()
    before = group_cpu_seconds(pgid)
    while time.monotonic() - began < limit:
        time.sleep(interval)
        now = group_cpu_seconds(pgid)
        if now - before < 0.02:
            break
        before = now
    return time.monotonic() - began


def start_in_group(command: list[str], *, env: dict[str, str], cwd: Path, log: Path, ready_url: str, workers: int,
                   worker_parent: str | None = None, timeout: float = 90) -> subprocess.Popen:
    """Start `command` as a new session, wait until `ready_url` answers (any HTTP status) and `workers` processes in the
    group are children of a process whose command line contains `worker_parent` (gunicorn's master), then return it."""
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=open(log, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"{command[0]} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(ready_url, timeout=2):
                    pass
            except urllib.error.HTTPError:  # an answer all the same
                pass
            except OSError:
                time.sleep(0.3)
                continue
            members = group_processes(process.pid)
            masters = {pid for pid, _, _ in members if worker_parent is None or worker_parent in _cmdline(pid)}
            if sum(parent in masters for _, parent, _ in members) >= workers:
                return process
            time.sleep(0.3)
    except BaseException:
        stop_group(process)
        raise
    stop_group(process)
    raise SystemExit(f"{command[0]} did not answer at {ready_url} within {timeout:g} s:\n{log.read_text()[-3000:]}")


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the whole process group, wait up to 20 s, then SIGKILL what is left of it."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + 10
    while group_processes(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if group_processes(process.pid):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if process.poll() is None:
        process.wait(timeout=10)


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, *, headers: dict[str, str], seconds: float, threads: int = 2, connections: int = 32) -> dict:
    """Run wrk --latency against `url`: requests/s, p50 and p99 in ms, requests, non-2xx/3xx answers and socket errors."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "30s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run([*command, url], check=True, capture_output=True, text=True, timeout=seconds + 60).stdout
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
    if set(percentiles) != {"50", "99"}:
        raise RuntimeError(f"wrk printed no latency percentiles for {url}:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)$", out, re.M)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": _ms(percentiles["50"]),
        "p99": _ms(percentiles["99"]),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def machine_load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def promote_through_review(*, model, owner, version) -> None:
    """Production the way users get there: staging, a request, and another user's approval (Django must be set up)."""
    from django.contrib.auth import get_user_model

    from apps.approvals.services import transition_request_approve, transition_request_create
    from apps.models.permissions import Action
    from apps.models.services import model_permission_grant

    approver = get_user_model().objects.create_user(username="bench-approver")
    for action in (Action.VIEW, Action.APPROVE_TRANSITION):
        model_permission_grant(model=model, actor=owner, action=action, user=approver)
    transition_request_create(version=version, to_stage="staging", actor=owner, justification="benchmark")
    transition_request = transition_request_create(version=version, to_stage="production", actor=owner, justification="benchmark")
    transition_request_approve(transition_request=transition_request, actor=approver)
