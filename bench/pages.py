#!/usr/bin/env python
"""Benchmark: dashboard pages and API lists with 1,000 models and a model of 100,000 versions, first pages against last.

Seeds the PostgreSQL database `registry_bench_pages` (dropped and recreated, dropped at the end; `--sqlite`: a fresh
SQLite database in a temp dir instead) with bulk inserts into the real tables (on PostgreSQL INSERT ... SELECT over
generate_series, copying a template row made through the ORM; bulk_create on SQLite): 1,000 models of 100 versions with 3
metrics each, plus one model, `model-deep`, of 100,000 versions with 3 metrics and a finished validation job each; all
1,001 models visible to one non-superuser through object permissions. Then, in-process through Django's test client
(median of 20 requests, query count of one; first and last pages requested in turn), it times:
  - each page as before, beside a bare view doing one indexed query with the same middleware;
  - the first and the last page of: the model page of `model-deep` (4,000 pages of 25; keyset links, the last page is
    `?last=1`), the API version list of `model-deep` (keyset: the last page is the cursor its `previous` links lead
    to, built here with apps.web.keyset.Position; and, for comparison, the old `page=` parameter), the models list
    (1,001 models) and the API models list, and prints last/first. Target (issue 11): each last page within 1.5x of its
    first.

    .venv/bin/python bench/pages.py --quick            # 100 models x 100 versions, model-deep of 10,000
    .venv/bin/python bench/pages.py                    # 1,000 models x 100 versions, model-deep of 100,000 (PostgreSQL)
    .venv/bin/python bench/pages.py --sqlite           # the same on SQLite
"""

import argparse
import math
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import common

DATABASE = "registry_bench_pages"  # not registry_bench, so it can run beside the other benchmarks
DEEP = "model-deep"
LAST_PAGE_TARGET = 1.5
BATCH = 5000


def seed(models: int, versions_per_model: int, deep_versions: int):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    from apps.models.models import RegisteredModel, RegisteredModelUserObjectPermission
    from apps.validation.models import ValidationJob
    from apps.versions.models import Metric, ModelVersion

    user = get_user_model().objects.create_user("bench-viewer", password="bench-pass-123")
    view = Permission.objects.get(codename="view_registeredmodel")
    created = RegisteredModel.objects.bulk_create(
        RegisteredModel(name=f"model-{i:05d}", description="Benchmark model", last_version_number=versions_per_model) for i in range(models)
    )
    deep = RegisteredModel.objects.create(name=DEEP, description="One model, many versions", last_version_number=deep_versions)
    RegisteredModelUserObjectPermission.objects.bulk_create(
        RegisteredModelUserObjectPermission(user=user, permission=view, content_object=m) for m in [*created, deep]
    )
    from django.db import connection

    if connection.vendor == "postgresql":
        _seed_versions_in_sql(created, deep, versions_per_model, deep_versions)
        return user, created
    for start in range(0, len(created), 50):
        batch = [
            ModelVersion(model=m, number=n, stage="production" if n == versions_per_model - 1 else "archived" if n < versions_per_model - 5 else "draft")
            for m in created[start : start + 50] for n in range(1, versions_per_model + 1)
        ]
        ModelVersion.objects.bulk_create(batch)
        Metric.objects.bulk_create(Metric(version=v, name=name, value=0.5) for v in batch for name in ("accuracy", "f1", "loss"))
    for start in range(1, deep_versions + 1, BATCH):
        numbers = range(start, min(start + BATCH, deep_versions + 1))
        batch = [
            ModelVersion(model=deep, number=n, description=f"Version {n}",
                         stage="production" if n == deep_versions - 1 else "archived" if n < deep_versions - 5 else "draft")
            for n in numbers
        ]
        ModelVersion.objects.bulk_create(batch)
        Metric.objects.bulk_create(
            (Metric(version=v, name=name, value=v.number / deep_versions) for v in batch for name in ("accuracy", "f1", "loss")), batch_size=BATCH
        )
        ValidationJob.objects.bulk_create(ValidationJob(version=v, status="passed", attempts=1, quality_status="none") for v in batch)
    return user, created


def _copies_of(model, template_pk, overrides: dict[str, str], source: str, params: list) -> None:
    """INSERT copies of one row of `model`'s table, one per row of `source` (SQL after FROM, ending in a WHERE
    condition), every column copied from the template row `t` unless `overrides` gives its SQL expression: all
    columns, whatever other apps add to the table."""
    from django.db import connection

    table = model._meta.db_table
    columns = [field.column for field in model._meta.concrete_fields]
    values = [overrides.get(column, f"t.{column}") for column in columns]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} FROM {table} t, {source} AND t.{model._meta.pk.column} = %s",
            [*params, template_pk],
        )


def _seed_versions_in_sql(created, deep, versions_per_model: int, deep_versions: int) -> None:
    """The versions, metrics and (for `model-deep`) validation jobs, in a few INSERT ... SELECT statements over
    generate_series (PostgreSQL): seconds instead of minutes of bulk_create. One template row of each table, made
    through the ORM, supplies every column the statements do not set."""
    from django.db import connection

    from apps.models.models import RegisteredModel
    from apps.validation.models import ValidationJob
    from apps.versions.models import Metric, ModelVersion

    template = ModelVersion.objects.create(model=deep, number=deep_versions + 1)
    stage = ("CASE WHEN g.n = {last} - 1 THEN 'production' WHEN g.n < {last} - 5 THEN 'archived' ELSE 'draft' END")
    _copies_of(ModelVersion, template.pk, {
        "id": "gen_random_uuid()", "model_id": "m.id", "number": "g.n", "stage": stage.format(last=versions_per_model),
    }, f"generate_series(1, %s) AS g(n), {RegisteredModel._meta.db_table} m WHERE m.id = ANY(%s)", [versions_per_model, [m.pk for m in created]])
    _copies_of(ModelVersion, template.pk, {
        "id": "gen_random_uuid()", "number": "g.n", "stage": stage.format(last=deep_versions), "description": "'Version ' || g.n",
    }, "generate_series(1, %s) AS g(n) WHERE TRUE", [deep_versions])
    job = ValidationJob.objects.create(version=template, status="passed", attempts=1, quality_status="none")
    versions = ModelVersion._meta.db_table
    _copies_of(ValidationJob, job.pk, {"id": f"nextval(pg_get_serial_sequence('{ValidationJob._meta.db_table}', 'id'))", "version_id": "v.id"},
               f"{versions} v WHERE v.model_id = %s AND v.id <> t.version_id", [deep.pk])
    template.delete()  # and its job
    metric = Metric._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {metric} (version_id, name, value) SELECT v.id, n.name,"
            f" CASE WHEN v.model_id = %s THEN v.number::float / %s ELSE 0.5 END"
            f" FROM {versions} v, (VALUES ('accuracy'), ('f1'), ('loss')) AS n(name) WHERE v.model_id = ANY(%s)",
            [deep.pk, deep_versions, [m.pk for m in [*created, deep]]],
        )


def measure(client, url: str, rounds: int) -> tuple[float, int]:
    (ms, queries), = measure_alternating(client, [url], rounds)
    return ms, queries


def measure_alternating(client, urls: list[str], rounds: int) -> list[tuple[float, int]]:
    """Median time and query count of each URL, requested in turn (first, last, first, ...) so drift hits all alike."""
    from django.db import connection

    counts = []
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        executed = []
        with connection.execute_wrapper(lambda execute, sql, params, many, context: executed.append(sql) or execute(sql, params, many, context)):
            client.get(url)
        counts.append(len(executed))
    times: list[list[float]] = [[] for _ in urls]
    for _ in range(rounds):
        for index, url in enumerate(urls):
            started = time.perf_counter()
            client.get(url)
            times[index].append((time.perf_counter() - started) * 1000)
    return [(statistics.median(t), n) for t, n in zip(times, counts)]


def last_api_page(client, url: str) -> str:
    """The URL of the last page of an API list, from the first page's `count` and page length (today's `page=`)."""
    body = client.get(url).json()
    pages = max(1, math.ceil(body["count"] / len(body["results"])))
    return f"{url}{'&' if '?' in url else '?'}page={pages}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 models, model-deep of 10,000 versions")
    parser.add_argument("--sqlite", action="store_true", help="SQLite in a temp dir instead of PostgreSQL")
    parser.add_argument("--rounds", type=int, default=20, help="requests timed per page (the median is printed)")
    args = parser.parse_args()
    models = 100 if args.quick else 1000
    deep_versions = 10_000 if args.quick else 100_000
    workdir = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    postgres = not args.sqlite
    try:
        print(f"{time.strftime('%Y-%m-%d %H:%M')}, {common.machine_load()}")
        if postgres:
            common.postgres_database("create", DATABASE)
        database_url = common.POSTGRES_URL.rsplit("/", 1)[0] + "/" + DATABASE if postgres else None
        # No statement timeout: seeding inserts 600,000 metric rows in one statement.
        common.django_in(workdir, database_url, DJANGO_ALLOWED_HOSTS="testserver", DATABASE_STATEMENT_TIMEOUT_SECONDS="0")
        from django.db import connection
        from django.test import Client
        from django.test.utils import override_settings

        from apps.models.views import PAGE_SIZE

        started = time.perf_counter()
        user, created = seed(models, 100, deep_versions)
        if postgres:
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")  # statistics as autovacuum would have them on a database that grew to this size
        print(f"seeded on {'PostgreSQL ' + DATABASE if postgres else 'SQLite'}: {models:,} models x 100 versions + {DEEP} with "
              f"{deep_versions:,} versions = {models * 100 + deep_versions:,} versions in {time.perf_counter() - started:.1f} s")
        client = Client()
        client.force_login(user)
        middle = created[len(created) // 2].name
        pages = {
            "models list": "/",
            "models list, page 20": "/?page=20" if models >= 500 else "/?page=2",
            "models list, search": f"/?q={middle}",
            "models list, stage filter": "/?stage=production",
            "model page (100 versions)": f"/models/{middle}/",
            "model page, page 3": f"/models/{middle}/?page=3",
            "version page": f"/models/{middle}/versions/50/",
            "API models list": "/api/v1/models/",
            "API stage lookup": f"/api/v1/models/{middle}/stages/production/",
        }
        with override_settings(ROOT_URLCONF="baseline_wsgi"):
            baseline_ms, baseline_queries = measure(client, f"/baseline/models/{middle}/", 50)
        print(f"\n{'page':<42} {'median ms':>10} {'queries':>8} {'x baseline':>11}")
        print(f"{'baseline: bare view':<42} {baseline_ms:>10.2f} {baseline_queries:>8}")
        for label, url in pages.items():
            ms, queries = measure(client, url, args.rounds)
            print(f"{label:<42} {ms:>10.2f} {queries:>8} {ms / baseline_ms:>10.1f}x")

        deep_api = f"/api/v1/models/{DEEP}/versions/"
        from apps.web.keyset import Position

        first_and_last = {
            f"model page of {DEEP}": (f"/models/{DEEP}/", f"/models/{DEEP}/?last=1"),
            f"model page of {DEEP}, ?page=": (f"/models/{DEEP}/", f"/models/{DEEP}/?page={math.ceil(deep_versions / PAGE_SIZE)}"),
            f"API version list of {DEEP}": (deep_api, f"{deep_api}?cursor={Position(last=True).encode()}"),
            f"API version list of {DEEP}, ?page=": (deep_api, last_api_page(client, deep_api)),
            f"models list ({models + 1:,} models)": ("/", f"/?page={math.ceil((models + 1) / PAGE_SIZE)}"),
            f"API models list ({models + 1:,} models)": ("/api/v1/models/", last_api_page(client, "/api/v1/models/")),
        }
        last_body = client.get(first_and_last[f"API version list of {DEEP}, ?page="][1]).json()
        assert last_body["results"][-1]["number"] == 1, "the API's last page does not end at v1"
        assert b">v1</" in client.get(first_and_last[f"model page of {DEEP}"][1]).content, "the model page's last page does not show v1"
        deep_last = client.get(first_and_last[f"API version list of {DEEP}"][1]).json()
        assert deep_last["results"][-1]["number"] == 1 and deep_last["next"] is None, "the API's last cursor page does not end at v1"
        print(f"\n{'first and last page':<42} {'first ms':>9} {'q':>3} {'last ms':>9} {'q':>3} {'last/first':>11}  target <= {LAST_PAGE_TARGET:g}")
        for label, (first, last) in first_and_last.items():
            (first_ms, first_queries), (last_ms, last_queries) = measure_alternating(client, [first, last], args.rounds)
            ratio = last_ms / first_ms
            print(f"{label:<42} {first_ms:>9.2f} {first_queries:>3} {last_ms:>9.2f} {last_queries:>3} {ratio:>10.2f}x  "
                  f"{'PASS' if ratio <= LAST_PAGE_TARGET else 'MISS'}   ({last})")
        print(f"\nfinished {time.strftime('%Y-%m-%d %H:%M')}, {common.machine_load()}")
    finally:
        if postgres:
            if "DJANGO_SETTINGS_MODULE" in os.environ:
                from django.db import connections

                connections.close_all()
            common.postgres_database("drop", DATABASE)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
