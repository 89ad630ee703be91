#!/usr/bin/env python
"""Benchmark: dashboard pages with 1,000 models and 100,000 versions, beside a bare Django view.

Seeds a fresh SQLite database in a temp dir (bulk inserts: 1,000 models, 100 versions each with 3 metrics, all
visible to one non-superuser through object permissions), then times each page in-process through Django's test
client and counts its queries. The baseline is a bare view doing one indexed query with the same middleware (plus the session and user look-ups every logged-in request makes).
What to look for: page times in milliseconds, not seconds, and query counts equal to those of a tiny database.

    .venv/bin/python bench/pages.py --quick   # 100 models x 100 versions
    .venv/bin/python bench/pages.py           # 1,000 models x 100 versions
"""

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import common


def seed(models: int, versions_per_model: int):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    from apps.models.models import RegisteredModel, RegisteredModelUserObjectPermission
    from apps.versions.models import Metric, ModelVersion

    user = get_user_model().objects.create_user("bench-viewer", password="bench-pass-123")
    view = Permission.objects.get(codename="view_registeredmodel")
    created = RegisteredModel.objects.bulk_create(
        RegisteredModel(name=f"model-{i:05d}", description="Benchmark model", last_version_number=versions_per_model) for i in range(models)
    )
    RegisteredModelUserObjectPermission.objects.bulk_create(
        RegisteredModelUserObjectPermission(user=user, permission=view, content_object=m) for m in created
    )
    for start in range(0, len(created), 50):
        batch = [
            ModelVersion(model=m, number=n, stage="production" if n == versions_per_model - 1 else "archived" if n < versions_per_model - 5 else "draft")
            for m in created[start : start + 50] for n in range(1, versions_per_model + 1)
        ]
        ModelVersion.objects.bulk_create(batch)
        Metric.objects.bulk_create(Metric(version=v, name=name, value=0.5) for v in batch for name in ("accuracy", "f1", "loss"))
    return user, created


def measure(client, url: str, rounds: int) -> tuple[float, int]:
    from django.db import connection

    assert client.get(url).status_code == 200, url
    executed = []

    def count(execute, sql, params, many, context):
        executed.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        client.get(url)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), len(executed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    models = 100 if args.quick else 1000
    workdir = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    try:
        common.django_in(workdir, DJANGO_ALLOWED_HOSTS="testserver")
        from django.test import Client
        from django.test.utils import override_settings

        started = time.perf_counter()
        user, created = seed(models, 100)
        print(f"seeded {models:,} models x 100 versions = {models * 100:,} versions in {time.perf_counter() - started:.1f} s")
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
        print(f"{'page':<30} {'median ms':>10} {'queries':>8} {'x baseline':>11}")
        print(f"{'baseline: bare view':<30} {baseline_ms:>10.2f} {baseline_queries:>8}")
        for label, url in pages.items():
            ms, queries = measure(client, url, 20)
            print(f"{label:<30} {ms:>10.2f} {queries:>8} {ms / baseline_ms:>10.1f}x")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
