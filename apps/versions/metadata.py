"""The version metadata document, shared by the API's `metadata` part, the upload form and the CLI.

    {
      "description": "...", "flavor": "huggingface", "tags": ["nlp"],
      "hyperparameters": {"lr": 0.001}, "metrics": {"accuracy": 0.93},
      "datasets": [{"name": "imdb", "uri": "s3://data/imdb", "digest": "sha256:...", "role": "training"}],
      "code": {"repository": "https://git/x.git", "commit": "abc123", "branch": "main", "dirty": false},
      "dependencies": {"requirements": "torch==2.3.0\\n", "python_version": "3.11", "framework": "torch", "framework_version": "2.3.0"},
      "environment": {"image": "registry/x@sha256:...", "cuda": "12.1"},
      "run": {"id": "mlflow:4f2a...", "url": "https://mlflow.example.com/#/experiments/1/runs/4f2a..."},
      "parents": [{"model": "bert-base", "version": 3, "relation": "fine_tuned_from"}],
      "artifacts": [{"path": "weights/model.safetensors", "sha256": "..."}]
    }

Datasets may also carry "size_bytes" and "description". The run URL is a record, never fetched (http or https
only). Parents are resolved at registration (`apps.lineage.services.parents_resolve`): each must already exist and
be visible to the registering user.
"""

import json
import math
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from apps.accounts.parsers import json_document_errors, json_loads_checked
from apps.lineage.models import DatasetRole, ParentRelation
from apps.models.names import canonical_model_name

from .models import Flavor

TOP_LEVEL_KEYS = {"description", "flavor", "tags", "hyperparameters", "metrics", "datasets", "code", "dependencies", "environment", "artifacts", "run", "parents"}
METRIC_NAME = re.compile(r"^[A-Za-z0-9_.:/@-]{1,128}$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
TAG = re.compile(r"^[\w.:-]{1,64}$")
MAX_PARENTS = 100


def run_url_error(url: str) -> str | None:
    """Why a training run URL is refused (None if it is fine). The URL is only stored and shown as a link."""
    if len(url) > 1000:
        return "must be at most 1000 characters."
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return "must not contain spaces or control characters."
    try:
        parts = urlsplit(url)
    except ValueError:
        return "is not a valid URL."
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host."
    return None


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
    run: dict = field(default_factory=dict)
    parents: list[dict] = field(default_factory=list)


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
    if len(raw.encode("utf-8", errors="surrogatepass")) > settings.METADATA_MAX_BYTES:
        raise ValidationError(
            {"metadata": f"Metadata is larger than {settings.METADATA_MAX_BYTES} bytes; keep large files (requirements, configs) as artifacts."}
        )
    return metadata_from_dict(json_loads_checked(raw, field="metadata"))


def _finite(value, depth: int = 0) -> bool:
    """True when a JSON value holds no infinite or NaN number (JSON columns and strict JSON refuse them)."""
    if depth > 50:
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v, depth + 1) for v in value)
    return True


def metadata_from_dict(document) -> VersionMetadata:
    if not isinstance(document, dict):
        raise ValidationError({"metadata": "Metadata must be a JSON object."})
    errors = json_document_errors(document, whole="metadata")  # before anything else: a field the database cannot store stops here
    if errors:
        raise ValidationError(errors)
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
    elif not _finite(hyperparameters):
        errors["hyperparameters"] = ["must hold only finite numbers (no NaN or infinity) and nest at most 50 levels."]
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
            extra = set(item) - {"name", "uri", "digest", "role", "description", "size_bytes"}
            if extra:
                errors.setdefault("datasets", []).append(f"Dataset #{index + 1}: unknown keys {', '.join(sorted(extra))}.")
                continue
            size_bytes = item.get("size_bytes")
            if size_bytes is not None and (isinstance(size_bytes, bool) or not isinstance(size_bytes, int) or not 0 <= size_bytes < 2**63):
                errors.setdefault("datasets", []).append(f"Dataset #{index + 1}: size_bytes must be a whole number of bytes (0 or more).")
                continue
            meta.datasets.append(
                {
                    "name": _string(errors, "datasets", item["name"], 200),
                    "uri": _string(errors, "datasets", item["uri"], 1000),
                    "digest": _string(errors, "datasets", item.get("digest"), 200),
                    "description": _string(errors, "datasets", item.get("description"), 5000),
                    "role": role,
                    "size_bytes": size_bytes,
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
    elif not _finite(environment):
        errors["environment"] = ["must hold only finite numbers (no NaN or infinity) and nest at most 50 levels."]
    else:
        meta.environment = environment

    run = document.get("run") or {}
    if not isinstance(run, dict) or set(run) - {"id", "url"}:
        errors["run"] = ["must be an object with 'id' and/or 'url' of the training run (e.g. an MLflow or W&B run)."]
    elif run:
        run_id = _string(errors, "run", run.get("id"), 200)
        url = _string(errors, "run", run.get("url"), 1000)
        problem = run_url_error(url) if url else None
        if problem:
            errors.setdefault("run", []).append(f"'url' {problem}")
        if not run_id and not url:
            errors.setdefault("run", []).append("give the run's 'id', its 'url' or both.")
        meta.run = {"id": run_id, "url": url}

    parents = document.get("parents") or []
    if not isinstance(parents, list):
        errors["parents"] = ["must be a list of {model, version, relation}."]
    elif len(parents) > MAX_PARENTS:
        errors["parents"] = [f"at most {MAX_PARENTS} parents."]
    else:
        seen = set()
        for index, item in enumerate(parents):
            label = f"Parent #{index + 1}"
            if not isinstance(item, dict) or set(item) - {"model", "version", "relation"}:
                errors.setdefault("parents", []).append(f"{label} must be an object with 'model', 'version' and 'relation'.")
                continue
            name, number, relation = item.get("model"), item.get("version"), item.get("relation")
            if not isinstance(name, str) or not name.strip() or len(name) > 128:
                errors.setdefault("parents", []).append(f"{label}: 'model' must be a model name.")
                continue
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                errors.setdefault("parents", []).append(f"{label}: 'version' must be a version number (1 or more).")
                continue
            if relation not in ParentRelation.values:
                errors.setdefault("parents", []).append(f"{label}: 'relation' must be one of {', '.join(ParentRelation.values)}.")
                continue
            key = (canonical_model_name(name), number)
            if key in seen:
                errors.setdefault("parents", []).append(f"{label}: {key[0]} v{number} is listed twice.")
                continue
            seen.add(key)
            meta.parents.append({"model": key[0], "version": number, "relation": relation})

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
