"""What every check receives and returns. A check is a module-level object with `name`, `version` and `run(context)`."""

import time
from dataclasses import dataclass, field
from typing import Callable

from django.conf import settings

from apps.versions.blobs import artifact_storage
from apps.versions.models import Artifact, ModelVersion

CHUNK_SIZE = 8 * 1024 * 1024


@dataclass
class Outcome:
    verdict: str
    summary: str
    details: dict = field(default_factory=dict)


@dataclass
class CheckContext:
    version: ModelVersion
    artifacts: list[Artifact]
    required_file_patterns: list[str]
    heartbeat: Callable[[], None] = lambda: None
    inspection: dict = field(default_factory=dict)  # what format inspection found; saved on the version

    def open(self, artifact: Artifact):
        return artifact_storage().open(artifact.blob_key, "rb")

    def read_chunks(self, artifact: Artifact):
        """Stream an artifact in chunks, honouring the optional read-rate limit and beating the heartbeat."""
        limit = settings.VALIDATION_READ_BYTES_PER_SECOND
        started, sent, last_beat = time.monotonic(), 0, time.monotonic()
        with self.open(artifact) as handle:
            while chunk := handle.read(CHUNK_SIZE if not limit else min(CHUNK_SIZE, max(4096, limit // 4))):
                yield chunk
                sent += len(chunk)
                if limit:
                    ahead = sent / limit - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
                if time.monotonic() - last_beat > 1:
                    self.heartbeat()
                    last_beat = time.monotonic()

    def by_suffix(self, *suffixes: str) -> list[Artifact]:
        return [a for a in self.artifacts if a.path.lower().endswith(suffixes)]
