"""The version metadata document, shared by the API's `metadata` part, the upload form and the CLI.

    {
      "description": "...", "flavor": "huggingface", "tags": ["nlp"],
      "hyperparameters": {"lr": 0.001}, "metrics": {"accuracy": 0.93},
      "datasets": [{"name": "imdb", "uri": "s3://data/imdb", "digest": "sha256:...", "role": "training"}],
      "code": {"repository": "https://git/x.git", "commit": "abc123", "branch": "main", "dirty": false},
      "dependencies": {"requirements": "torch==2.3.0\\n", "python_version": "3.11", "framework": "torch", "framework_version": "2.3.0"},
      "environment": {"image": "registry/x@sha256:...", "cuda": "12.1"},
      "artifacts": [{"path": "weights/model.safetensors", "sha256": "..."}]
    }
"""

import json
import math
import re
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError

from apps.lineage.models import DatasetRole

from .models import Flavor

TOP_LEVEL_KEYS = {"description", "flavor", "tags", "hyperparameters", "metrics", "datasets", "code", "dependencies", "environment", "artifacts"}
METRIC_NAME = re.compile(r"^[A-Za-z0-9_.:/@-]{1,128}$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
TAG = re.compile(r"^[\w.:-]{1,64}$")


@dataclass
class DeclaredArtifact:
    path: str | None = None
    sha256: str | None = None


@dataclass
class VersionMetadata:
    description: str = ""
    flavor: str = Flavor.CUSTOM
    tags: list[str] = field(default_factory=list)
    hyperparameters: dict = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    datasets: list[dict] = field(default_factory=list)
    code: dict = field(default_factory=dict)
    dependencies: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)
    artifacts: list[DeclaredArtifact] = field(default_factory=list)


def _string(errors, key, value, max_length):
    if value is None:
        return ""
    if not isinstance(value, str):
        errors.setdefault(key, []).append("must be a string.")
        return ""
    if len(value) > max_length:
        errors.setdefault(key, []).append(f"must be at most {max_length} characters.")
    return value


def metadata_from_json(raw: str | bytes) -> VersionMetadata:
    """Parse the metadata JSON text. Raises ValidationError with a message that says what to fix."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if len(raw.encode()) > settings.METADATA_MAX_BYTES:
        raise ValidationError(
            {"metadata": f"Metadata is larger than {settings.METADATA_MAX_BYTES} bytes; keep large files (requirements, configs) as artifacts."}
        )
    try:
        document = json.loads(raw, parse_constant=lambda name: _reject_constant(name))
    except (ValueError, RecursionError) as exc:
        raise ValidationError({"metadata": f"Metadata is not valid JSON: {exc}."}) from exc
    return metadata_from_dict(document)


def _reject_constant(name):
    raise ValueError(f"{name} is not allowed")


def metadata_from_dict(document) -> VersionMetadata:
    if not isinstance(document, dict):
        raise ValidationError({"metadata": "Metadata must be a JSON object."})
    errors: dict[str, list[str]] = {}
    unknown = set(document) - TOP_LEVEL_KEYS
    if unknown:
        errors["metadata"] = [f"Unknown keys: {', '.join(sorted(unknown))}. Allowed: {', '.join(sorted(TOP_LEVEL_KEYS))}."]
    meta = VersionMetadata()
    meta.description = _string(errors, "description", document.get("description"), 20000)
    flavor = document.get("flavor") or Flavor.CUSTOM
    if flavor not in Flavor.values:
        errors["flavor"] = [f"Unknown flavor {flavor!r}; use one of {', '.join(Flavor.values)}."]
    meta.flavor = flavor

    tags = document.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) and TAG.match(t) for t in tags):
        errors["tags"] = ["must be a list of short words (letters, digits, '.', ':', '-', '_')."]
    else:
        meta.tags = sorted(set(tags))

    hyperparameters = document.get("hyperparameters") or {}
    if not isinstance(hyperparameters, dict):
        errors["hyperparameters"] = ["must be a JSON object of name -> value."]
    else:
        meta.hyperparameters = hyperparameters

    metrics = document.get("metrics") or {}
    if not isinstance(metrics, dict):
        errors["metrics"] = ["must be a JSON object of name -> number."]
    else:
        for name, value in metrics.items():
            if not METRIC_NAME.match(name):
                errors.setdefault("metrics", []).append(f"Metric name {name!r} is not allowed; use letters, digits and . _ - : / @.")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                errors.setdefault("metrics", []).append(f"Metric {name!r} must be a finite number, got {json.dumps(value)}.")
            else:
                meta.metrics[name] = float(value)

    datasets = document.get("datasets") or []
    if not isinstance(datasets, list):
        errors["datasets"] = ["must be a list of {name, uri, digest, role}."]
    else:
        for index, item in enumerate(datasets):
            if not isinstance(item, dict) or not item.get("name") or not item.get("uri"):
                errors.setdefault("datasets", []).append(f"Dataset #{index + 1} needs at least 'name' and 'uri'.")
                continue
            role = item.get("role") or DatasetRole.TRAINING
            if role not in DatasetRole.values:
                errors.setdefault("datasets", []).append(f"Dataset #{index + 1}: role must be 'training' or 'evaluation'.")
                continue
            extra = set(item) - {"name", "uri", "digest", "role", "description"}
            if extra:
                errors.setdefault("datasets", []).append(f"Dataset #{index + 1}: unknown keys {', '.join(sorted(extra))}.")
                continue
            meta.datasets.append(
                {
                    "name": _string(errors, "datasets", item["name"], 200),
                    "uri": _string(errors, "datasets", item["uri"], 1000),
                    "digest": _string(errors, "datasets", item.get("digest"), 200),
                    "description": _string(errors, "datasets", item.get("description"), 5000),
                    "role": role,
                }
            )

    code = document.get("code") or {}
    if not isinstance(code, dict) or set(code) - {"repository", "commit", "branch", "dirty"}:
        errors["code"] = ["must be an object with repository, commit, branch and dirty."]
    else:
        dirty = code.get("dirty")
        if dirty is not None and not isinstance(dirty, bool):
            errors["code"] = ["'dirty' must be true or false."]
        commit = _string(errors, "code", code.get("commit"), 64)
        if commit and not re.fullmatch(r"[0-9a-fA-F]{7,64}", commit):
            errors.setdefault("code", []).append("'commit' must be a hexadecimal commit SHA (7-64 characters).")
        meta.code = {
            "repository": _string(errors, "code", code.get("repository"), 500),
            "commit": commit.lower(),
            "branch": _string(errors, "code", code.get("branch"), 255),
            "dirty": dirty,
        }

    dependencies = document.get("dependencies") or {}
    if not isinstance(dependencies, dict) or set(dependencies) - {"requirements", "python_version", "framework", "framework_version"}:
        errors["dependencies"] = ["must be an object with requirements, python_version, framework and framework_version."]
    else:
        meta.dependencies = {
            "requirements": _string(errors, "dependencies", dependencies.get("requirements"), 100000),
            "python_version": _string(errors, "dependencies", dependencies.get("python_version"), 32),
            "framework": _string(errors, "dependencies", dependencies.get("framework"), 64),
            "framework_version": _string(errors, "dependencies", dependencies.get("framework_version"), 64),
        }

    environment = document.get("environment") or {}
    if not isinstance(environment, dict):
        errors["environment"] = ["must be a JSON object (e.g. {\"image\": \"registry/x@sha256:...\"})."]
    else:
        meta.environment = environment

    artifacts = document.get("artifacts") or []
    if not isinstance(artifacts, list):
        errors["artifacts"] = ["must be a list of {path, sha256} in the order of the uploaded files."]
    else:
        for index, item in enumerate(artifacts):
            if not isinstance(item, dict) or set(item) - {"path", "sha256"}:
                errors.setdefault("artifacts", []).append(f"Artifact #{index + 1} must be an object with 'path' and/or 'sha256'.")
                continue
            sha = item.get("sha256")
            if sha is not None and (not isinstance(sha, str) or not SHA256_HEX.match(sha.lower())):
                errors.setdefault("artifacts", []).append(f"Artifact #{index + 1}: sha256 must be 64 hexadecimal characters.")
                continue
            path = item.get("path")
            if path is not None and not isinstance(path, str):
                errors.setdefault("artifacts", []).append(f"Artifact #{index + 1}: path must be a string.")
                continue
            meta.artifacts.append(DeclaredArtifact(path=path, sha256=sha.lower() if sha else None))

    if errors:
        raise ValidationError(errors)
    return meta
