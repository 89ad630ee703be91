#!/usr/bin/env python
"""Benchmark: impact analysis and lineage graphs on generated graphs of 1,000 and 10,000 nodes, beside a single
indexed query (one version by its unique (model, number)) in the same run.

Each graph has datasets (1 in 20 nodes) and versions spread over models of 100 versions. Most versions are
fine-tuned from the version before them (long chains); about one in five is distilled from a random earlier
version (fan-out), and some are ensembles of two parents. Root versions are trained on one to three datasets.
Rows are bulk-inserted (registering 10,000 versions through `version_register` would take minutes and measure
the upload path, not lineage reads). The reading user is not a superuser: they view half of the models through a
team, so the permission filter runs as it does for real users.

Printed per graph size: the time (median of repeated runs) and SQL query count of
  - impact of the most used dataset (`impacted_versions`, what /datasets/{id}/ and its API call),
  - the lineage graph of a version deep in a chain (`version_lineage_graph`, what the lineage page calls),
  - the baseline: `ModelVersion.objects.filter(model=..., number=...).first()` on the unique index,
and the ratio to the baseline. On its own SQLite database in a temp dir, removed at the end.

    .venv/bin/python bench/lineage.py
    .venv/bin/python bench/lineage.py --sizes 1000 10000 50000
"""

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import common

MODEL_SIZE = 100  # versions per model


def timed(work, repeat: int) -> tuple[float, object]:
    """Median seconds of `repeat` runs of work(), and the last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def counted(work) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        work()
    return len(ctx.captured_queries)


def build(size: int, rng: random.Random, team, owner):
    """`size` nodes: datasets and versions with parent chains, fan-out and ensembles. Returns (hot dataset, deep version)."""
    from django.db import transaction

    from apps.lineage.models import Dataset, VersionDataset, VersionParent
    from apps.models.models import RegisteredModel
    from apps.models.permissions import Action
    from apps.models.services import model_create, model_permission_grant
    from apps.versions.models import ModelVersion

    dataset_count = max(1, size // 20)
    version_count = size - dataset_count
    with transaction.atomic():
        datasets = Dataset.objects.bulk_create(
            Dataset(name=f"ds-{size}-{i}", uri=f"s3://bench/{size}/{i}", digest=f"v{i}", size_bytes=rng.randrange(1 << 30)) for i in range(dataset_count)
        )
        versions, parents, links = [], [], []
        for m in range((version_count + MODEL_SIZE - 1) // MODEL_SIZE):
            model = model_create(name=f"bench-{size}-{m}", actor=owner)
            if m % 2 == 0:  # the reader's team sees half of the models
                model_permission_grant(model=model, actor=owner, action=Action.VIEW, group=team)
            count = min(MODEL_SIZE, version_count - len(versions))
            batch = ModelVersion.objects.bulk_create(ModelVersion(model=model, number=n + 1) for n in range(count))
            RegisteredModel.objects.filter(pk=model.pk).update(last_version_number=count)
            for n, version in enumerate(batch):
                roll = rng.random()
                if n == 0 or roll < 0.05:  # a root: trained from scratch
                    # most roots read one of a few popular datasets, so one dataset's impact is a large share
                    chosen = {datasets[0]} if rng.random() < 0.5 else set()
                    chosen |= set(rng.sample(datasets, k=min(len(datasets), rng.randint(1, 2))))
                    links.extend(VersionDataset(version=version, dataset=d, role="training") for d in chosen)
                elif roll < 0.75 or not versions:
                    parents.append(VersionParent(child=version, parent=batch[n - 1], relation="fine_tuned_from"))
                elif roll < 0.95:
                    parents.append(VersionParent(child=version, parent=rng.choice(versions or batch[:n]), relation="distilled_from"))
                else:
                    two = {batch[n - 1], rng.choice(versions or batch[:n])}
                    parents.extend(VersionParent(child=version, parent=p, relation="ensembled_from") for p in two)
                if rng.random() < 0.1:
                    links.append(VersionDataset(version=version, dataset=rng.choice(datasets), role="evaluation"))
            versions.extend(batch)
        VersionParent.objects.bulk_create(parents, batch_size=2000)
        VersionDataset.objects.bulk_create(links, batch_size=2000, ignore_conflicts=True)
    # the visible version with the longest line of ancestors (parents are always created before their children)
    depth: dict = {}
    for link in parents:
        depth[link.child_id] = max(depth.get(link.child_id, 0), depth.get(link.parent_id, 0) + 1)
    visible = [v for v in versions if int(v.model.name.rsplit("-", 1)[1]) % 2 == 0]
    deep = max(visible, key=lambda v: depth.get(v.pk, 0))
    return datasets[0], deep, depth.get(deep.pk, 0), len(parents), len(links)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="graph sizes in nodes (default 1000 10000)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-lineage-"))
    try:
        common.django_in(workdir)
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group

        from apps.lineage.selectors import impacted_versions, version_lineage_graph
        from apps.versions.models import ModelVersion

        owner = get_user_model().objects.create_user("bench-owner")
        reader = get_user_model().objects.create_user("bench-reader")
        admin = get_user_model().objects.create_superuser("bench-admin")
        team = Group.objects.create(name="bench-team")
        reader.groups.add(team)
        rng = random.Random(args.seed)

        rows = []
        for size in args.sizes:
            started = time.perf_counter()
            dataset, deep, deep_levels, parent_links, dataset_links = build(size, rng, team, owner)
            built = time.perf_counter() - started
            repeat = max(3, 20000 // size)
            model, number = deep.model, deep.number

            def baseline(model=model, number=number):
                return ModelVersion.objects.filter(model=model, number=number).first()

            baseline()  # warm the connection and the statement cache alike for all three
            base_s, _ = timed(baseline, repeat * 20)
            def impact_of(dataset=dataset):
                return impacted_versions(reader, dataset=dataset)

            def graph_of(deep=deep):
                return version_lineage_graph(reader, deep)

            impact_s, impact = timed(impact_of, repeat)
            graph_s, graph = timed(graph_of, repeat)
            rows.append({
                "size": size, "built": built, "deep_levels": deep_levels, "parent_links": parent_links, "dataset_links": dataset_links,
                "base_s": base_s, "base_q": counted(baseline),
                "impact_s": impact_s, "impact_q": counted(impact_of), "impact_n": len(impact),
                "impact_all": len(impacted_versions(admin, dataset=dataset)),
                "graph_s": graph_s, "graph_q": counted(graph_of), "graph_n": len(graph.nodes),
            })

        print("SQLite, reader sees half of the models through a team; times are medians.")
        for r in rows:
            print(
                f"\n{r['size']:,} nodes ({r['size'] // 20:,} datasets, {r['size'] - r['size'] // 20:,} versions,"
                f" {r['parent_links']:,} parent links, {r['dataset_links']:,} dataset links; built in {r['built']:.1f} s)"
            )
            print(f"  baseline: one version by (model, number)  {r['base_s'] * 1000:8.3f} ms  {r['base_q']} query")
            print(
                f"  impact of the busiest dataset             {r['impact_s'] * 1000:8.3f} ms  {r['impact_q']} query"
                f"   {r['impact_n']:,} visible of {r['impact_all']:,} affected versions   ratio {r['impact_s'] / r['base_s']:,.0f}x baseline"
            )
            print(
                f"  lineage graph of the deepest version       {r['graph_s'] * 1000:8.3f} ms  {r['graph_q']} queries"
                f" {r['graph_n']:,} nodes drawn, {r['deep_levels']} levels of ancestors   ratio {r['graph_s'] / r['base_s']:,.0f}x baseline"
            )
        if len(rows) > 1:
            first, last = rows[0], rows[-1]
            grow = last["size"] / first["size"]
            print(
                f"\n{grow:.0f}x the nodes: impact {last['impact_s'] / first['impact_s']:.1f}x the time"
                f" ({last['impact_n'] / max(1, first['impact_n']):.1f}x the versions listed), same query count"
                f" ({first['impact_q']} -> {last['impact_q']}); graph {last['graph_s'] / first['graph_s']:.1f}x the time,"
                f" queries {first['graph_q']} -> {last['graph_q']}."
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
