#!/usr/bin/env python
"""Benchmark: the alias lookup through this registry's MLflow endpoint beside MLflow 3.17.2's own server, same load.

    GET /api/2.0/mlflow/registered-models/alias?name=bench-vs-mlflow&alias=champion

what `MlflowClient().get_model_version_by_alias` and every `models:/name@alias` load call first. Servers (each the
leader of its own process group, on 127.0.0.1, 2 gunicorn sync workers; reused from bench/vs_mlflow.py):
  ours    registry_site.wsgi with production settings (DEBUG off) on the PostgreSQL database `registry_bench_mlflow_compat`;
          the request carries a registry token (MLFLOW_TRACKING_TOKEN as the client sends it)
  mlflow  `mlflow server --workers 2` on a SQLite backend store, installed once into a cached venv
          (~/.cache/model-registry-bench/mlflow-3.17.2) from the package index, no authentication
Both hold 200 versions of one model with six key-value tags each and alias `champion` on v150. Ours are registered
through `version_register`, tagged through `version_key_tag_set` and aliased through `alias_set` (the services the
MLflow endpoints call); MLflow's through its REST API.

Load: wrk -t2 -c32 --latency, N seconds per server per round, order alternating between rounds. Printed per run:
req/s, p50, p99, server CPU per request; then the ratio ours/MLflow of req/s as median [min..max] over rounds and
the p99s, against the target (ours >= 3x MLflow's req/s, p99 below MLflow's).

    .venv/bin/python bench/mlflow_compat.py --quick     # 1 round of 5 s per server
    .venv/bin/python bench/mlflow_compat.py             # 3 rounds of 10 s
"""

import json
import secrets
import statistics
import sys
import time
import urllib.parse

import common
import vs_mlflow

DATABASE = "registry_bench_mlflow_compat"
MODEL, VERSIONS, CHAMPION = vs_mlflow.MODEL, vs_mlflow.VERSIONS, vs_mlflow.PRODUCTION
TARGET_RATIO = 3.0


def seed_ours() -> dict:
    """In a subprocess whose environment names the database: migrate, then 200 tagged versions and @champion through
    the services. Returns the token and the queries one lookup runs."""
    sys.path.insert(0, str(common.ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from apps.accounts.services import api_token_create
    from apps.approvals.services import alias_set
    from apps.catalog.services import version_register
    from apps.mlflow_api.services import version_key_tag_set
    from apps.models.services import model_create

    call_command("migrate", verbosity=0, interactive=False)
    call_command("collectstatic", verbosity=0, interactive=False)
    user = get_user_model().objects.create_user(username="bench", password=secrets.token_urlsafe(24))
    model = model_create(name=MODEL, actor=user, description="MLflow comparison")
    champion = None
    for number in range(1, VERSIONS + 1):
        files, metadata = common.bench_version(number, weight_floats=256)
        version = version_register(model=model, files=files, metadata=metadata, actor=user)
        for key, value in {"flavor": "pytorch", "nlp": "", f"run-{number}": "", "accuracy": str(0.5 + number / 1000),
                           "f1": str(0.45 + number / 1000), "loss": str(0.5 / number)}.items():
            version_key_tag_set(version=version, key=key, value=value, actor=user)
        if number == CHAMPION:
            champion = version
    alias_set(model=model, alias="champion", version=champion, actor=user)
    _, token = api_token_create(user=user, name="bench")
    api = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {token}")
    url = "/api/2.0/mlflow/registered-models/alias?" + urllib.parse.urlencode({"name": MODEL, "alias": "champion"})
    api.get(url)  # the token's first use stamps last_used_at, and the answer is cached: count the steady state
    with CaptureQueriesContext(connection) as captured:
        response = api.get(url)
    assert response.status_code == 200 and response.json()["model_version"]["version"] == str(CHAMPION), response.content[:300]
    return {"token": token, "queries": len(captured)}


def main() -> None:
    args = vs_mlflow.load_arguments(__doc__).parse_args()
    if args.seed_only:
        print(json.dumps(seed_ours()))
        return
    seconds, rounds = vs_mlflow.load_window(args)
    python = vs_mlflow.mlflow_python()
    with vs_mlflow.scratch(DATABASE, prefix="registry-bench-mlflow-compat-") as (workdir, servers):
        print(f"{time.strftime('%Y-%m-%d %H:%M')}, {common.machine_load()} (before seeding)", flush=True)
        common.postgres_database("create", DATABASE)
        (workdir / "ours").mkdir()
        env = common.server_environment(workdir / "ours", common.POSTGRES_URL.rsplit("/", 1)[0] + "/" + DATABASE)
        seeded = vs_mlflow.seed_ours_in(env, workdir, "ours", script=__file__)
        servers["ours"], ours_port = vs_mlflow.start_ours(env, workdir, "registry_site.wsgi:application", "ours")
        servers["mlflow"], mlflow_port = vs_mlflow.start_mlflow(python, workdir)
        vs_mlflow.seed_mlflow(mlflow_port)

        query = urllib.parse.urlencode({"name": MODEL, "alias": "champion"})
        plan = {
            "ours": (f"http://127.0.0.1:{ours_port}/api/2.0/mlflow/registered-models/alias?{query}", {"Authorization": f"Bearer {seeded['token']}"}),
            "mlflow": (f"http://127.0.0.1:{mlflow_port}/api/2.0/mlflow/registered-models/alias?{query}", {}),
        }
        answers = {}
        for server, (url, headers) in plan.items():
            status, _, body = vs_mlflow.get(url, headers)
            assert status == 200, (server, status, body[:300])
            answers[server] = json.loads(body)["model_version"]
            common.wrk(url, headers=headers, seconds=1, connections=2)  # warm-up
            common.wait_idle(servers[server].pid)
        same = {key: (answers["ours"].get(key), answers["mlflow"].get(key)) for key in ("name", "version", "aliases", "status", "current_stage")}
        assert all(a == b for a, b in same.values()), f"the two answers differ: {same}"
        print(f"both answer @champion = v{answers['ours']['version']} with {len(answers['ours']['tags'])} tags; ours runs "
              f"{seeded['queries']} queries per lookup (the token is remembered after its first use)")
        print(f"load: wrk -t2 -c32 --latency, {seconds:g} s per server, {rounds} round(s), alternating order; wrk shares the CPUs")

        results: dict[str, list[dict]] = {"ours": [], "mlflow": []}
        for round_number in range(1, rounds + 1):
            print(f"round {round_number} ({common.machine_load()})", flush=True)
            for server in ("ours", "mlflow") if round_number % 2 else ("mlflow", "ours"):
                result = vs_mlflow.run(*plan[server], seconds, servers[server].pid)
                results[server].append(result)
                print(f"  {server:7s} {result['rps']:8.1f} req/s  p50 {result['p50']:7.1f} ms  p99 {result['p99']:7.1f} ms  CPU {result['cpu_ms']:6.2f} "
                      f"ms/req  ({result['requests']} requests, {result['errors']} non-2xx/3xx)", flush=True)
        report(results)
        print(f"finished {time.strftime('%Y-%m-%d %H:%M')}, {common.machine_load()}")
        if any(r["errors"] for runs in results.values() for r in runs):
            raise SystemExit("some requests failed (non-2xx/3xx); the figures above are not valid")


def report(results: dict[str, list[dict]]) -> None:
    def median(server: str, key: str) -> float:
        return statistics.median(r[key] for r in results[server])

    ratios = [ours["rps"] / theirs["rps"] for ours, theirs in zip(results["ours"], results["mlflow"])]
    print(f"\nsummary (median of {len(ratios)} round(s))")
    for server in ("ours", "mlflow"):
        print(f"  {server:7s} {median(server, 'rps'):8.1f} req/s  p50 {median(server, 'p50'):7.1f} ms  p99 {median(server, 'p99'):7.1f} ms  "
              f"CPU {median(server, 'cpu_ms'):6.2f} ms/req")
    ratio_ok = statistics.median(ratios) >= TARGET_RATIO
    p99_ok = median("ours", "p99") < median("mlflow", "p99")
    print(f"  ours/MLflow req/s {vs_mlflow.spread(ratios)} (target >= {TARGET_RATIO:g}) {'PASS' if ratio_ok else 'MISS'}")
    print(f"  p99 ours {median('ours', 'p99'):.1f} ms vs MLflow {median('mlflow', 'p99'):.1f} ms (target: below) {'PASS' if p99_ok else 'MISS'}")


if __name__ == "__main__":
    main()
