#!/usr/bin/env python
"""Benchmark: validating a version with one big safetensors file, beside `sha256sum` of the same file.

Target: the validation job's throughput is at least 0.8 of sha256sum's (its checks read the file once).
The job runs in-process through `validation_run`, as a worker would run it, on its own SQLite database and
artifact folder in a temp dir, removed at the end.

    .venv/bin/python bench/validate.py --quick    # 100 MiB
    .venv/bin/python bench/validate.py            # 1 GiB
"""

import argparse
import json
import os
import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import common

MiB = 1024 * 1024
TARGET = 0.8


def write_safetensors(path: Path, size: int) -> None:
    """One F32 tensor filling `size` bytes (header included), written in 8 MiB blocks of varied bytes."""
    data_bytes = size - 4096  # leave room for the header; the file ends up slightly smaller than `size`
    data_bytes -= data_bytes % 4
    header = json.dumps({"weight": {"dtype": "F32", "shape": [data_bytes // 4], "data_offsets": [0, data_bytes]}}).encode()
    header += b" " * (-len(header) % 8)
    block = os.urandom(8 * MiB)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        left = data_bytes
        while left:
            handle.write(block[: min(left, len(block))])
            left -= min(left, len(block))


def sha256sum_seconds(path: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["sha256sum", str(path)], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 MiB instead of 1 GiB")
    args = parser.parse_args()
    size = 100 * MiB if args.quick else 1024 * MiB
    workdir = Path(tempfile.mkdtemp(prefix="bench-validate-"))
    try:
        common.django_in(workdir)
        from django.contrib.auth import get_user_model
        from django.core.files import File

        from apps.models.services import model_create
        from apps.validation.services import validation_run
        from apps.versions.document import metadata_from_dict
        from apps.catalog.services import version_register
        from apps.versions.services import IncomingFile

        source = workdir / "model.safetensors"
        write_safetensors(source, size)
        size = source.stat().st_size
        sha256sum_seconds(source)  # warm the page cache for both measurements alike
        baseline = min(sha256sum_seconds(source) for _ in range(3))
        digest = subprocess.run(["sha256sum", str(source)], check=True, capture_output=True, text=True).stdout.split()[0]

        user = get_user_model().objects.create_user("bench")
        model = model_create(name="bench-validate", actor=user)
        with open(source, "rb") as handle:
            version = version_register(
                model=model, actor=user, metadata=metadata_from_dict({"flavor": "pytorch"}),
                files=[IncomingFile(path="model.safetensors", content=File(handle), sha256=digest, size=size)],
            )
        stored = Path(os.environ["ARTIFACT_ROOT"]) / version.artifacts.get().blob_key
        subprocess.run(["cat", str(stored)], check=True, stdout=subprocess.DEVNULL)  # warm the stored copy's cache too
        job = version.validation_jobs.get()
        started = time.perf_counter()
        validation_run(job_id=job.pk)
        elapsed = time.perf_counter() - started
        job.refresh_from_db()
        assert job.status == "passed", [(c.name, c.verdict, c.summary) for c in job.checks.all()]

        base_rate, job_rate = size / baseline / MiB, size / elapsed / MiB
        ratio = job_rate / base_rate
        print(f"file: {size / MiB:.0f} MiB safetensors; job status {job.status}, {job.checks.count()} checks")
        print(f"sha256sum       : {baseline:7.3f} s  {base_rate:8.1f} MiB/s   (baseline, best of 3, warm cache)")
        print(f"validation job  : {elapsed:7.3f} s  {job_rate:8.1f} MiB/s")
        print(f"ratio           : {ratio:.2f} of sha256sum (target >= {TARGET}) -> {'OK' if ratio >= TARGET else 'BELOW TARGET'}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
