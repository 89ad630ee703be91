"""Unsafe serialization: for every artifact, whatever its name, find each stream a loader could unpickle
(`pickle_containers`), walk it as the unpickler would (`pickle_machine`), and fail on any import outside the exact
allow-list (`pickle_allowlist`) or any step that cannot be shown safe. Nothing is imported or executed.
"""

import time

from django.conf import settings

from ..models import Verdict
from .base import CheckContext, Outcome
from .pickle_containers import Borrowed, Limits, Report, Scanner

name = "unsafe_serialization"
version = "2.0"


def limits() -> Limits:
    return Limits(
        max_bytes=settings.VALIDATION_PICKLE_MAX_BYTES,
        max_ratio=settings.VALIDATION_PICKLE_MAX_RATIO,
        max_depth=settings.VALIDATION_PICKLE_MAX_DEPTH,
    )


def _summary(report: Report) -> dict:
    if report.pickles:
        kind = "pickle" if "" in report.pickles else "container"
    else:
        kind = "not a pickle"
    return {
        "format": kind,
        "members": [where for where in report.pickles if where],
        "containers": report.containers,
        "imports": sorted(f"{module}.{qualname}" for module, qualname in report.imports),
        "unsafe": report.unsafe,
    }


def scan_file(handle, *, limits_: Limits | None = None, on_progress=None) -> dict:
    """Scan one seekable binary file (an artifact, or bytes in tests)."""

    return _summary(Scanner(limits_ or limits(), on_progress).scan(lambda: Borrowed(handle)))


def run(context: CheckContext) -> Outcome:
    findings: dict[str, dict] = {}
    unsafe_files: dict[str, list[str]] = {}
    last_beat = [time.monotonic()]

    def progress(_bytes: int) -> None:
        if time.monotonic() - last_beat[0] > 1:
            context.heartbeat()
            last_beat[0] = time.monotonic()

    for artifact in context.artifacts:  # by content, never by name: every artifact is looked at
        with context.open(artifact) as handle:
            result = scan_file(handle, on_progress=progress)
        findings[artifact.path] = result
        if result["unsafe"]:
            unsafe_files[artifact.path] = result["unsafe"]
    details = {"files": findings, "unsafe": unsafe_files}
    if unsafe_files:
        listed = "; ".join(f"{path}: {', '.join(found)}" for path, found in unsafe_files.items())
        return Outcome(Verdict.FAIL, f"unsafe when unpickled: {listed}"[:480], details)
    pickled = [path for path, result in findings.items() if result["format"] != "not a pickle"]
    if not pickled:
        return Outcome(Verdict.SKIP, "no pickle-based files", details)
    return Outcome(Verdict.PASS, f"{len(pickled)} pickle-based file(s) import only allow-listed callables", details)
