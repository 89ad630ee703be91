"""What every check receives and returns. A check is a module-level object with `name`, `version` and `run(context)`.

Every check runs under a time budget. Reads through `context.open()` / `context.read_chunks()` and calls to
`context.check_budget()` beat the job's heartbeat and raise `BudgetExceeded` once the check's budget or the
job's hard limit has run out, so a check that reads or loops cooperatively can never pin a worker.
"""

import json
import re
import time
from dataclasses import dataclass, field
from typing import Callable

from django.conf import settings

from apps.versions.blobs import blob_open
from apps.versions.models import Artifact, ModelVersion

CHUNK_SIZE = 8 * 1024 * 1024
HEARTBEAT_EVERY_SECONDS = 1.0


@dataclass
class Outcome:
    verdict: str  # a Verdict
    summary: str
    details: dict = field(default_factory=dict)


# BaseException, like KeyboardInterrupt: a check's own `except Exception` (e.g. "could not parse, so unsafe")
# must not turn a timeout into a verdict about the file.
class BudgetExceeded(BaseException):
    """The running check is out of time; `job_limit` tells whether the whole job is (then no further check runs)."""

    def __init__(self, reason: str, *, job_limit: bool):
        super().__init__(reason)
        self.reason = reason
        self.job_limit = job_limit


class TooDeeplyNested(ValueError):
    pass


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_INNERMOST_PAIR = re.compile(rb"\[\]|\{\}")


def loads_bounded(raw: bytes, *, max_depth: int):
    """`json.loads` for untrusted bytes that refuses nesting deeper than `max_depth` with `TooDeeplyNested`.

    Parsed first (linear, in C; past the interpreter's recursion limit it stops by itself), then the depth of the
    now known-valid text is measured without recursion: strings removed, each pass strips the innermost brackets.
    """
    try:
        value = json.loads(raw.decode("utf-8"))
    except RecursionError as exc:
        raise TooDeeplyNested(f"JSON nests deeper than {max_depth} levels") from exc
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_A_BRACKET)
    for _ in range(max_depth):
        if not brackets:
            return value
        brackets = _INNERMOST_PAIR.sub(b"", brackets)
    if brackets:
        raise TooDeeplyNested(f"JSON nests deeper than {max_depth} levels")
    return value


class BudgetedReader:
    """A read-only file wrapper: every read first checks the budget (which also beats the heartbeat)."""

    def __init__(self, raw, check_budget: Callable[[], None]):
        self._raw = raw
        self._check_budget = check_budget

    def read(self, size: int = -1) -> bytes:
        self._check_budget()
        return self._raw.read(size)

    def read1(self, size: int = -1) -> bytes:
        self._check_budget()
        return (self._raw.read1 if hasattr(self._raw, "read1") else self._raw.read)(size)

    def readinto(self, buffer) -> int:
        self._check_budget()
        return self._raw.readinto(buffer)

    def readline(self, size: int = -1) -> bytes:
        self._check_budget()
        return self._raw.readline(size)

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def __enter__(self) -> "BudgetedReader":
        return self

    def __exit__(self, *exc_info) -> None:
        self._raw.close()

    def __getattr__(self, name: str):  # seek, tell, seekable, close, name, ...
        return getattr(self._raw, name)


@dataclass
class CheckContext:
    version: ModelVersion
    artifacts: list[Artifact]
    required_file_patterns: list[str]
    heartbeat: Callable[[], None] = lambda: None
    inspection: dict = field(default_factory=dict)  # what format inspection found; saved on the version
    job_deadline: float | None = None  # time.monotonic() past which the job stops
    job_limit_seconds: float | None = None
    check_budget_seconds: float | None = None
    current_check: str = ""
    _check_deadline: float | None = field(default=None, repr=False)
    _last_beat: float = field(default=0.0, repr=False)

    def start_check(self, name: str) -> None:
        """Start the clock of the next check; its budget never reaches past the job's hard limit."""
        self.current_check = name
        self._check_deadline = time.monotonic() + self.check_budget_seconds if self.check_budget_seconds else None

    def check_budget(self) -> None:
        """Beat the heartbeat (at most once a second) and raise `BudgetExceeded` once time is up."""
        now = time.monotonic()
        if self.job_deadline is not None and now >= self.job_deadline:
            raise BudgetExceeded(f"the job ran past its hard limit of {self.job_limit_seconds:g} s during {self.current_check}", job_limit=True)
        if self._check_deadline is not None and now >= self._check_deadline:
            raise BudgetExceeded(f"{self.current_check} ran past its time budget of {self.check_budget_seconds:g} s", job_limit=False)
        if now - self._last_beat >= HEARTBEAT_EVERY_SECONDS:
            self.heartbeat()
            self._last_beat = now

    def open(self, artifact: Artifact) -> BudgetedReader:
        """The artifact as a seekable binary file; on S3 each read fetches only its own bytes (`blob_open`)."""
        return BudgetedReader(blob_open(artifact.sha256), self.check_budget)

    def read_json(self, artifact: Artifact, limit: int, *, max_depth: int):
        """An artifact's JSON, parsed with `loads_bounded` from at most `limit` bytes. Raises TooDeeplyNested, or a
        ValueError (UnicodeDecodeError too) when it is longer than `limit` bytes or not JSON."""
        with self.open(artifact) as handle:
            raw = handle.read(limit + 1)
        if len(raw) > limit:
            raise ValueError(f"it is longer than {limit} bytes")
        return loads_bounded(raw, max_depth=max_depth)

    def read_chunks(self, artifact: Artifact):
        """Stream an artifact in chunks, honouring the optional read-rate limit; each read checks the budget."""
        limit = settings.VALIDATION_READ_BYTES_PER_SECOND
        started, sent = time.monotonic(), 0
        with self.open(artifact) as handle:
            while chunk := handle.read(CHUNK_SIZE if not limit else min(CHUNK_SIZE, max(4096, limit // 4))):
                yield chunk
                sent += len(chunk)
                if limit:
                    ahead = sent / limit - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)

    def by_suffix(self, *suffixes: str) -> list[Artifact]:
        return [a for a in self.artifacts if a.path.lower().endswith(suffixes)]
