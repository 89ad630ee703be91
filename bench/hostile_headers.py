#!/usr/bin/env python
"""Benchmark: how long validation takes to refuse hostile safetensors headers (the 1.7 MB, 80,000-dimension shape
that used to pin a worker for about a minute in `math.prod`, and its relatives).

Each file is registered and validated in-process through `validation_run`, as a worker would run it, on a SQLite
database and artifact folder in a temp dir, removed at the end. Prints the job's duration and the inspection verdict.

    .venv/bin/python bench/hostile_headers.py
"""

import json
import shutil
import struct
import tempfile
import time
from pathlib import Path

import common


def safetensors(header: bytes, data: bytes = b"\x00" * 4) -> bytes:
    return struct.pack("<Q", len(header)) + header + data


def cases() -> dict[str, bytes]:
    tensor = {"dtype": "F32", "data_offsets": [0, 4]}
    return {
        "80,000 dimensions (1.7 MB header)": safetensors(json.dumps({"w": {**tensor, "shape": [10**19 + i for i in range(80_000)]}}).encode()),
        "64 dimensions of 2**63": safetensors(json.dumps({"w": {**tensor, "shape": [2**63] * 64}}).encode()),
        "JSON nested 100,000 deep": safetensors(b'{"__metadata__":{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}}"),
        "200,000 well-formed tensors (14 MB header)": safetensors(
            json.dumps({f"t{i}": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]} for i in range(200_000)}).encode()
        ),
    }


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    try:
        common.django_in(workdir)
        from django.contrib.auth import get_user_model

        from apps.models.services import model_create
        from apps.validation.services import validation_run
        from apps.versions.document import metadata_from_dict
        from apps.catalog.services import version_register
        from apps.versions.services import incoming_from_bytes

        user = get_user_model().objects.create_superuser("bench", password="bench-password")
        model = model_create(name="hostile", actor=user)
        print(f"{'file':45} {'bytes':>10} {'job s':>8}  inspection verdict")
        for label, data in cases().items():
            version = version_register(
                model=model, actor=user, files=[incoming_from_bytes("model.safetensors", data)], metadata=metadata_from_dict({})
            )
            job = version.validation_jobs.get()
            started = time.perf_counter()
            validation_run(job_id=job.pk)
            seconds = time.perf_counter() - started
            check = job.checks.get(name="format_inspection")
            print(f"{label:45} {len(data):>10,} {seconds:>8.3f}  {check.verdict}: {check.summary[:90]}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
