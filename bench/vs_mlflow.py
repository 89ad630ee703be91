#!/usr/bin/env python
"""Benchmark: this registry's read paths beside MLflow 3.17.2's and a bare Django view, same machine, same window.

Servers, each the leader of its own process group, all on 127.0.0.1 with 2 gunicorn sync workers:
  ours        registry_site.wsgi on the PostgreSQL database `registry_bench_mlflow` (production settings, DEBUG off)
  ours-sqlite the same on SQLite in a temp dir (with --sqlite)
  mlflow      `mlflow server --workers 2 --gunicorn-opts "--worker-class sync ..."` on a SQLite backend store
  bare        bench/baseline_wsgi.py on the same PostgreSQL: the project's settings and middleware, one view, one query
              (and bare-sqlite on ours-sqlite's database, with --sqlite)
MLflow is a peer, not a dependency: it is installed with its own gunicorn into a cached venv outside the project's
(~/.cache/model-registry-bench/mlflow-3.17.2) the first time, from the package index.

Both registries hold the same 200 versions of one model. Ours are registered through `version_register` (3 files
and full metadata each), validated through `validation_run`, and v150 reaches production through a transition request
approved by a second user. MLflow's are created through its REST API (description, flavor, tags and metrics as
version tags; MLflow keeps metrics on runs) with alias `champion` on v150.

Reads (wrk -t2 -c32, N seconds each; every round runs every read once, odd rounds in reverse order):
  production lookup    ours: GET /api/v1/models/{name}/stages/production/ (Bearer token), as a 200 and as a 304
                       revalidation (If-None-Match); MLflow: GET registered-models/alias?alias=champion
  version by number    ours: GET /api/v1/models/{name}/versions/100/; MLflow: GET model-versions/get?version=100
  200 versions         ours: GET /api/v1/models/{name}/versions/?page_size=200; MLflow: GET model-versions/search
                       ?filter=name='{name}'&max_results=200
  model page           ours: GET /models/{name}/ (session cookie, first page of the versions table);
                       MLflow: the same search run as above (MLflow's UI reads the versions through it)
Printed per run: requests/s, p50, p99 and server CPU per request (user+system time of the server's process group from
/proc, divided by the requests wrk completed; PostgreSQL's own CPU is not included). Summary: medians over rounds and
the ratios ours/MLflow and ours/bare as median [min..max] of the per-round ratios, each against the issue's target.

    .venv/bin/python bench/vs_mlflow.py --quick     # 1 round of 5 s per read
    .venv/bin/python bench/vs_mlflow.py             # 3 rounds of 10 s per read, about 6 minutes
    .venv/bin/python bench/vs_mlflow.py --sqlite    # also ours on SQLite (and a bare view on that SQLite)
"""

import argparse
import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import common

MLFLOW_VERSION = "3.17.2"
MLFLOW_VENV = Path.home() / ".cache" / "model-registry-bench" / f"mlflow-{MLFLOW_VERSION}"
MODEL = "bench-vs-mlflow"
VERSIONS = 200
DATABASE = "registry_bench_mlflow"  # not registry_bench, so it can run beside the other benchmarks
PRODUCTION = 150
BY_NUMBER = 100
WORKERS = 2
TARGETS = {  # read -> (minimum ours/MLflow, minimum ours/bare or None), from issue 11
    "production lookup": (3.0, 0.75),
    "production lookup, 304": (3.0, 0.75),
    "version by number": (2.0, None),
    "200 versions": (2.0, None),
    "model page (25 rows)": (1.0, None),
}


# --- MLflow's venv ---------------------------------------------------------------------------------------------------


def mlflow_python() -> Path:
    """The cached MLflow venv's interpreter, installing mlflow and gunicorn into it first when missing."""
    python = MLFLOW_VENV / "bin" / "python"
    marker = MLFLOW_VENV / ".installed"
    if marker.exists() and python.exists():
        return python
    print(f"installing mlflow=={MLFLOW_VERSION} and gunicorn into {MLFLOW_VENV} (once; from the package index)", flush=True)
    shutil.rmtree(MLFLOW_VENV, ignore_errors=True)
    MLFLOW_VENV.parent.mkdir(parents=True, exist_ok=True)
    base = Path(getattr(sys, "_base_executable", sys.executable))
    subprocess.run([str(base), "-m", "venv", str(MLFLOW_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"mlflow=={MLFLOW_VERSION}", "gunicorn"], check=True)
    marker.write_text(f"mlflow=={MLFLOW_VERSION}\n")
    return python


# --- seeding ---------------------------------------------------------------------------------------------------------


def seed_ours() -> dict:
    """Run inside a subprocess whose environment names the database: migrate and seed through the services.

    Returns what the load needs (token, session cookie, ETag of the production answer) and the queries each read runs.
    """
    sys.path.insert(0, str(common.ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from apps.accounts.services import api_token_create
    from apps.models.services import model_create
    from apps.validation.services import validation_run
    from apps.catalog.services import version_register

    call_command("migrate", verbosity=0, interactive=False)
    call_command("collectstatic", verbosity=0, interactive=False)  # production settings render pages through the static manifest
    user = get_user_model().objects.create_user(username="bench", password=secrets.token_urlsafe(24))
    model = model_create(name=MODEL, actor=user, description="MLflow comparison", tags=["bench"])
    _, token = api_token_create(user=user, name="bench")
    production = None
    for number in range(1, VERSIONS + 1):
        files, metadata = common.bench_version(number, weight_floats=256)
        version = version_register(model=model, files=files, metadata=metadata, actor=user)
        validation_run(job_id=version.validation_jobs.get().pk)  # every version carries its check results, as in use
        if number == PRODUCTION:
            production = version
    common.promote_through_review(model=model, owner=user, version=production)

    api = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {token}")
    page = Client(HTTP_HOST="127.0.0.1")
    page.force_login(user)
    queries = {}
    for label, client, url in (
        ("stage", api, f"/api/v1/models/{MODEL}/stages/production/"),
        ("detail", api, f"/api/v1/models/{MODEL}/versions/{BY_NUMBER}/"),
        ("list", api, f"/api/v1/models/{MODEL}/versions/?page_size={VERSIONS}"),
        ("page", page, f"/models/{MODEL}/"),
    ):
        client.get(url)  # the first request of a token also stamps last_used_at; count the steady state
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200, (url, response.status_code, response.content[:500])
        queries[label] = len(captured)
    cookie = f"{settings.SESSION_COOKIE_NAME}={page.cookies[settings.SESSION_COOKIE_NAME].value}"
    return {"token": token, "cookie": cookie, "queries": queries}


def seed_ours_in(env: dict[str, str], workdir: Path, label: str, script: str = __file__) -> dict:
    """Run `script --seed-only` (its seed_ours) in a subprocess on `env`'s database; return what it printed last, as JSON."""
    started = time.perf_counter()
    log = workdir / f"seed-{label}.log"
    with open(log, "wb") as out:
        finished = subprocess.run([sys.executable, script, "--seed-only"], env=env, cwd=common.ROOT, stdout=subprocess.PIPE, stderr=out,
                                  timeout=1800)
    if finished.returncode:
        raise SystemExit(f"seeding {label} failed:\n{log.read_text()[-3000:]}")
    seeded = json.loads(finished.stdout.decode().strip().splitlines()[-1])
    print(f"seeded {label}: {VERSIONS} versions through the services in {time.perf_counter() - started:.0f} s", flush=True)
    return seeded


def mlflow_call(port: int, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/2.0/mlflow/{path}", method=method, headers={"Content-Type": "application/json"},
        data=json.dumps(body).encode() if body is not None else None,
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def seed_mlflow(port: int) -> None:
    started = time.perf_counter()
    mlflow_call(port, "POST", "registered-models/create", {"name": MODEL, "description": "MLflow comparison", "tags": [{"key": "bench", "value": ""}]})
    for number in range(1, VERSIONS + 1):
        tags = {"flavor": "pytorch", "nlp": "", f"run-{number}": "", "accuracy": str(0.5 + number / 1000), "f1": str(0.45 + number / 1000),
                "loss": str(0.5 / number)}
        created = mlflow_call(port, "POST", "model-versions/create", {
            "name": MODEL, "source": f"s3://bench-artifacts/{MODEL}/{number}", "description": f"Version {number}",
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
        })
        assert created["model_version"]["version"] == str(number), created
    mlflow_call(port, "POST", "registered-models/alias", {"name": MODEL, "alias": "champion", "version": str(PRODUCTION)})
    print(f"seeded mlflow: {VERSIONS} versions through its REST API in {time.perf_counter() - started:.0f} s", flush=True)


# --- servers ---------------------------------------------------------------------------------------------------------


def start_ours(env: dict[str, str], workdir: Path, app: str, label: str):
    port = common.free_port()
    config = workdir / "gunicorn.bench.conf.py"
    config.write_text(common.GUNICORN_SYNC_CONFIG)
    command = [str(common.VENV_BIN / "gunicorn"), "-c", str(config), "--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS),
               "--chdir", str(common.ROOT), "--pythonpath", str(common.BENCH), app]
    process = common.start_in_group(command, env=env, cwd=workdir, log=workdir / f"{label}.log", ready_url=f"http://127.0.0.1:{port}/healthz",
                                    workers=WORKERS, worker_parent="gunicorn")
    return process, port


def start_mlflow(python: Path, workdir: Path):
    port = common.free_port()
    store = workdir / "mlflow"
    store.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DJANGO_", "DATABASE_URL"))}
    env.update(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", PYTHONDONTWRITEBYTECODE="1")  # no job runner or huey consumers beside it
    command = [str(python), "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
               "--default-artifact-root", str(store / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", str(WORKERS),
               "--gunicorn-opts", "--worker-class sync --log-level warning"]
    process = common.start_in_group(command, env=env, cwd=store, log=workdir / "mlflow.log", ready_url=f"http://127.0.0.1:{port}/health",
                                    workers=WORKERS, worker_parent="-m gunicorn", timeout=180)
    return process, port


def get(url: str, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


# --- the runs --------------------------------------------------------------------------------------------------------


def targets_for(label: str, port: int, seeded: dict) -> dict[str, tuple[str, dict[str, str]]]:
    """Check each of ours' reads answers what it should, and return {read: (url, headers)}; the ETag comes from a 200."""
    base = f"http://127.0.0.1:{port}"
    bearer = {"Authorization": f"Bearer {seeded['token']}"}
    stage_url = f"{base}/api/v1/models/{MODEL}/stages/production/"
    status, headers, body = get(stage_url, bearer)
    assert status == 200 and json.loads(body)["number"] == PRODUCTION, (label, status, body[:300])
    etag = headers.get("ETag") or headers.get("Etag")
    assert etag, (label, "the stage lookup sent no ETag")
    revalidate = {**bearer, "If-None-Match": etag}
    assert get(stage_url, revalidate)[0] == 304, (label, "If-None-Match with the current ETag is not a 304")
    detail_url = f"{base}/api/v1/models/{MODEL}/versions/{BY_NUMBER}/"
    status, _, body = get(detail_url, bearer)
    assert status == 200 and json.loads(body)["number"] == BY_NUMBER, (label, status, body[:300])
    list_url = f"{base}/api/v1/models/{MODEL}/versions/?page_size={VERSIONS}"
    status, _, body = get(list_url, bearer)
    assert status == 200 and len(json.loads(body)["results"]) == VERSIONS, (label, status, body[:300])
    cookie = {"Cookie": seeded["cookie"]}
    page_url = f"{base}/models/{MODEL}/"
    status, _, body = get(page_url, cookie)
    assert status == 200 and f"v{VERSIONS}".encode() in body, (label, "model page", status, body[:300])
    return {
        "production lookup": (stage_url, bearer),
        "production lookup, 304": (stage_url, revalidate),
        "version by number": (detail_url, bearer),
        "200 versions": (list_url, bearer),
        "model page (25 rows)": (page_url, cookie),
    }


def mlflow_targets(port: int) -> dict[str, tuple[str, dict[str, str]]]:
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    alias = f"{base}/registered-models/alias?" + urllib.parse.urlencode({"name": MODEL, "alias": "champion"})
    by_number = f"{base}/model-versions/get?" + urllib.parse.urlencode({"name": MODEL, "version": BY_NUMBER})
    search = f"{base}/model-versions/search?" + urllib.parse.urlencode({"filter": f"name='{MODEL}'", "max_results": VERSIONS})
    assert json.loads(get(alias, {})[2])["model_version"]["version"] == str(PRODUCTION)
    assert json.loads(get(by_number, {})[2])["model_version"]["version"] == str(BY_NUMBER)
    assert len(json.loads(get(search, {})[2])["model_versions"]) == VERSIONS
    return {"alias": (alias, {}), "get": (by_number, {}), "search": (search, {})}


def run(url: str, headers: dict[str, str], seconds: float, pgid: int) -> dict:
    cpu_before = common.group_cpu_seconds(pgid)
    result = common.wrk(url, headers=headers, seconds=seconds)
    cpu = common.group_cpu_seconds(pgid) - cpu_before
    result["cpu_ms"] = cpu * 1000 / result["requests"] if result["requests"] else float("nan")
    result["drained_s"] = common.wait_idle(pgid)  # the requests wrk left queued are served before the next run starts
    return result


def spread(values: list[float]) -> str:
    def short(value: float) -> str:
        return f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"

    if len(values) == 1:
        return short(values[0])
    return f"{short(statistics.median(values))} [{short(min(values))}..{short(max(values))}]"


def load_arguments(doc: str) -> argparse.ArgumentParser:
    """--quick, --seconds, --rounds and the internal --seed-only of a benchmark against MLflow."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 round of 5 s per read (default: 3 rounds of 10 s)")
    parser.add_argument("--seconds", type=float, help="seconds of load per read and server")
    parser.add_argument("--rounds", type=int, help="rounds; each runs every read on every server once")
    parser.add_argument("--seed-only", action="store_true", help=argparse.SUPPRESS)  # internal: the seeding subprocess
    return parser


def load_window(args) -> tuple[float, int]:
    """Seconds per run and rounds from the arguments, once wrk is known to be installed."""
    if not shutil.which("wrk"):
        print(common.WRK_INSTALL_HINT, file=sys.stderr)
        raise SystemExit(2)
    return args.seconds or (5 if args.quick else 10), args.rounds or (1 if args.quick else 3)


@contextlib.contextmanager
def scratch(database: str, *, prefix: str):
    """A temp dir and a dict for the servers started in it: on the way out the servers are stopped, the scratch
    database dropped and the dir removed; on a failure the servers' logs are printed first."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    servers: dict[str, subprocess.Popen] = {}
    try:
        yield workdir, servers
    except BaseException:
        for log in sorted(workdir.glob("*.log")):  # the servers' own account of what went wrong, before the temp dir goes
            print(f"--- {log.name} (last 3,000 characters)\n{log.read_text(errors='replace')[-3000:]}", file=sys.stderr)
        raise
    finally:
        for process in servers.values():
            common.stop_group(process)
        common.postgres_database("drop", database)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = load_arguments(__doc__)
    parser.add_argument("--sqlite", action="store_true", help="also run ours (and the bare view) on SQLite in a temp dir")
    args = parser.parse_args()
    if args.seed_only:
        print(json.dumps(seed_ours()))
        return
    seconds, rounds = load_window(args)
    python = mlflow_python()

    with scratch(DATABASE, prefix="registry-bench-mlflow-") as (workdir, servers):
        print(f"{time.strftime('%Y-%m-%d %H:%M')}, {common.machine_load()} (before seeding)", flush=True)
        common.postgres_database("create", DATABASE)
        databases = {"ours": common.POSTGRES_URL.rsplit("/", 1)[0] + "/" + DATABASE}
        if args.sqlite:
            databases["ours-sqlite"] = f"sqlite:///{workdir / 'ours.sqlite3'}"
        envs = {}
        seeded = {}
        for label, url in databases.items():
            (workdir / label).mkdir()
            envs[label] = common.server_environment(workdir / label, url)
            seeded[label] = seed_ours_in(envs[label], workdir, label)
        ports = {}
        for label in databases:
            servers[label], ports[label] = start_ours(envs[label], workdir, "registry_site.wsgi:application", label)
            bare = label.replace("ours", "bare")
            servers[bare], ports[bare] = start_ours(envs[label], workdir, "baseline_wsgi:application", bare)
        servers["mlflow"], ports["mlflow"] = start_mlflow(python, workdir)
        seed_mlflow(ports["mlflow"])

        plan: list[tuple[str, str, str, dict[str, str]]] = []  # (server, read, url, headers)
        for label in databases:
            plan += [(label, read, url, headers) for read, (url, headers) in targets_for(label, ports[label], seeded[label]).items()]
            bare = label.replace("ours", "bare")
            plan.append((bare, "bare view", f"http://127.0.0.1:{ports[bare]}/baseline/models/{MODEL}/", {}))
        plan += [("mlflow", read, url, headers) for read, (url, headers) in mlflow_targets(ports["mlflow"]).items()]
        for server, _, url, headers in plan:  # warm-up: every worker has imported, connected and cached what it needs
            common.wrk(url, headers=headers, seconds=1, connections=2)  # 2 connections: nothing left queued behind a slow read
            common.wait_idle(servers[server].pid)

        print(f"servers: gunicorn {WORKERS} sync workers each; ours with production settings (DEBUG off) on "
              f"{' and '.join(databases.values())}; mlflow {MLFLOW_VERSION} on SQLite; {VERSIONS} versions in each")
        print(f"load: wrk -t2 -c32 --latency, {seconds:g} s per read, {rounds} round(s), alternating order; wrk shares the CPUs with the servers")
        for label in databases:
            print(f"queries per request ({label}, counted in-process): " + ", ".join(f"{k} {v}" for k, v in seeded[label]["queries"].items()))
        results: dict[tuple[str, str], list[dict]] = {}
        for round_number in range(1, rounds + 1):
            print(f"round {round_number} ({common.machine_load()})", flush=True)
            for server, read, url, headers in plan if round_number % 2 else reversed(plan):
                result = run(url, headers, seconds, servers[server].pid)
                results.setdefault((server, read), []).append(result)
                print(f"  {server:12s} {read:24s} {result['rps']:8.1f} req/s  p50 {result['p50']:7.1f} ms  p99 {result['p99']:7.1f} ms  "
                      f"CPU {result['cpu_ms']:6.2f} ms/req  ({result['requests']} requests, {result['errors']} non-2xx/3xx"
                      f"{', socket errors: ' + result['socket_errors'] if result['socket_errors'] else ''}; drained in {result['drained_s']:.1f} s)", flush=True)
        report(results, databases, seeded, rounds)
        print(f"finished {time.strftime('%Y-%m-%d %H:%M')}, {common.machine_load()}")
        if any(r["errors"] for runs in results.values() for r in runs):
            raise SystemExit("some requests failed (non-2xx/3xx); the figures above are not valid")


def report(results: dict, databases: dict, seeded: dict, rounds: int) -> None:
    peer_of = {"production lookup": "alias", "production lookup, 304": "alias", "version by number": "get", "200 versions": "search",
               "model page (25 rows)": "search"}

    def median(server: str, read: str, key: str) -> float:
        return statistics.median(r[key] for r in results[(server, read)])

    def ratios(a: tuple[str, str], b: tuple[str, str]) -> list[float]:
        return [x["rps"] / y["rps"] for x, y in zip(results[a], results[b])]

    print(f"\nsummary (median of {rounds} round(s); ratios of req/s as median [min..max] over rounds; CPU = server process group per request)")
    head = f"  {'read':36s}{'req/s':>9s}{'p50 ms':>9s}{'p99 ms':>9s}{'CPU ms':>8s}{'queries':>8s}"
    print(head)
    rows = [("mlflow", read) for read in ("alias", "get", "search")]
    for label in databases:
        rows += [(label, read) for read in peer_of] + [(label.replace("ours", "bare"), "bare view")]
    query_key = {"production lookup": "stage", "production lookup, 304": "stage", "version by number": "detail", "200 versions": "list",
                 "model page (25 rows)": "page"}
    for server, read in rows:
        queries = seeded[server]["queries"][query_key[read]] if server in seeded else ""
        print(f"  {server + ' ' + read:36s}{median(server, read, 'rps'):9.1f}{median(server, read, 'p50'):9.1f}{median(server, read, 'p99'):9.1f}"
              f"{median(server, read, 'cpu_ms'):8.2f}{queries!s:>8s}")
    print(f"\n  {'read':36s}{'ours/MLflow':>24s}{'target':>8s}{'':6s}{'ours/bare':>24s}{'target':>8s}")
    for label in databases:
        bare = (label.replace("ours", "bare"), "bare view")
        for read, peer in peer_of.items():
            vs_peer = ratios((label, read), ("mlflow", peer))
            vs_bare = ratios((label, read), bare)
            peer_target, bare_target = TARGETS[read]
            verdict = "PASS" if statistics.median(vs_peer) >= peer_target else "MISS"
            bare_verdict = "" if bare_target is None else ("PASS" if statistics.median(vs_bare) >= bare_target else "MISS")
            print(f"  {label + ' ' + read:36s}{spread(vs_peer):>24s}{'>= ' + format(peer_target, 'g'):>8s} {verdict:5s}{spread(vs_bare):>24s}"
                  f"{'>= ' + format(bare_target, 'g') if bare_target else '':>8s} {bare_verdict}")
        cheaper = median(label, "production lookup, 304", "cpu_ms") < median(label, "production lookup", "cpu_ms")
        print(f"  {label} 304 revalidation cheaper than a 200 (server CPU per request): "
              f"{median(label, 'production lookup, 304', 'cpu_ms'):.2f} vs {median(label, 'production lookup', 'cpu_ms'):.2f} ms  "
              f"{'PASS' if cheaper else 'MISS'}")


if __name__ == "__main__":
    main()
