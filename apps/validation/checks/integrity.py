"""Re-read every stored artifact and compare size and SHA-256 with what was recorded at upload."""

import hashlib

from ..models import Verdict
from .base import CheckContext, Outcome

name = "integrity"
version = "1.0"


def run(context: CheckContext) -> Outcome:
    problems = []
    checked_bytes = 0
    for artifact in context.artifacts:
        hasher, size = hashlib.sha256(), 0
        try:
            for chunk in context.read_chunks(artifact):
                hasher.update(chunk)
                size += len(chunk)
        except FileNotFoundError:
            problems.append({"path": artifact.path, "problem": "blob is missing from storage"})
            continue
        checked_bytes += size
        if size != artifact.size:
            problems.append({"path": artifact.path, "problem": f"size is {size}, recorded {artifact.size}"})
        elif hasher.hexdigest() != artifact.sha256:
            problems.append({"path": artifact.path, "problem": f"SHA-256 is {hasher.hexdigest()}, recorded {artifact.sha256}"})
    details = {"files": len(context.artifacts), "bytes": checked_bytes, "problems": problems}
    if problems:
        return Outcome(Verdict.FAIL, f"{len(problems)} of {len(context.artifacts)} artifacts do not match their checksums", details)
    return Outcome(Verdict.PASS, f"{len(context.artifacts)} artifacts match their recorded size and SHA-256", details)
