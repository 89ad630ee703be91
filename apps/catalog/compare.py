"""The comparison page's arithmetic: versions side by side, each section diffed against a baseline column.

Pure functions over `Snapshot`s (plain data), so every rule here is tested without a database. The only
function that touches a model instance is `snapshot_of`, which reads what `versions_with_details` prefetched.

Statuses of a cell against the baseline column: "added" (absent in the baseline, present here), "removed"
(present in the baseline, absent here), "changed", "same", or None (absent in both, or the baseline itself).
"""

import json
from dataclasses import dataclass, field
from datetime import datetime

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from apps.models.names import canonical_model_name
from apps.validation.models import Direction
from apps.versions.lifecycle import Stage

MAX_VERSIONS = 10
EPSILON = 1e-12
MISSING = object()
ENVIRONMENT_FACTS = ("Python", "Framework", "Framework version", "Environment image")


@dataclass(frozen=True)
class Snapshot:
    """What the comparison shows of one version, detached from the ORM."""

    model: str
    number: int
    stage: str = Stage.DRAFT
    created_at: datetime | None = None
    validation: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    hyperparameters: dict = field(default_factory=dict)
    artifacts: dict[str, tuple[str, int]] = field(default_factory=dict)  # path -> (sha256, size)
    requirements: str = ""
    environment: dict[str, str] = field(default_factory=dict)  # python, framework, framework version, image
    datasets: frozenset[tuple[str, str, str, str]] = frozenset()  # (role, name, uri, digest)
    inspection: dict | None = None  # ModelVersion.inspection; None or {} when validation has not inspected it

    @property
    def key(self) -> str:
        return f"{self.model}:{self.number}"

    @property
    def label(self) -> str:
        return f"{self.model} v{self.number}"


def snapshot_of(version) -> Snapshot:
    """A Snapshot of a version loaded with `versions_with_details` (no queries: everything is prefetched)."""
    jobs = list(version.validation_jobs.all())
    return Snapshot(
        model=version.model.name,
        number=version.number,
        stage=version.stage,
        created_at=version.created_at,
        validation=jobs[0].status if jobs else "",
        metrics={m.name: m.value for m in version.metrics.all()},
        hyperparameters=version.hyperparameters or {},
        artifacts={a.path: (a.sha256, a.size) for a in version.artifacts.all()},
        requirements=version.requirements,
        environment=dict(zip(ENVIRONMENT_FACTS, (version.python_version, version.framework, version.framework_version, version.environment_image))),
        datasets=frozenset((link.role, link.dataset.name, link.dataset.uri, link.dataset.digest) for link in version.dataset_links.all()),
        inspection=version.inspection or None,
    )


# --- the URL: ?v=<model>:<number>&v=... ---------------------------------------------------------------


def parse_refs(raw_values: list[str]) -> tuple[list[tuple[str, int]], int]:
    """The (model name, number) pairs asked for, in order without repeats, and how many values were malformed.

    A malformed value counts as "unknown" on the page, like a version that does not exist or is not visible.
    """
    refs: list[tuple[str, int]] = []
    malformed = 0
    for raw in raw_values:
        name, sep, number = raw.strip().rpartition(":")
        name = canonical_model_name(name)
        if not sep or not name or not number.isascii() or not number.isdigit() or int(number) < 1:
            malformed += 1
            continue
        ref = (name, int(number))
        if ref not in refs:
            refs.append(ref)
    return refs, malformed


# --- metrics ---------------------------------------------------------------------------------------------


def verdict(delta: float | None, direction: str | None) -> str | None:
    """'better', 'worse' or 'same' by the quality rule's direction; 'neutral' when no rule says which way is good."""
    if delta is None:
        return None
    if abs(delta) <= EPSILON:
        return "same"
    if direction not in Direction.values:
        return "neutral"
    improved = delta > 0 if direction == Direction.HIGHER else delta < 0
    return "better" if improved else "worse"


def metric_rows(snapshots: list[Snapshot], baseline: int, directions: dict[str, str]) -> list[dict]:
    """One row per metric name any version has (names match across models), values with deltas against the baseline."""
    names = sorted({name for snap in snapshots for name in snap.metrics})
    rows = []
    for name in names:
        base = snapshots[baseline].metrics.get(name)
        direction = directions.get(name)
        cells = []
        for index, snap in enumerate(snapshots):
            value = snap.metrics.get(name)
            delta = value - base if value is not None and base is not None and index != baseline else None
            percent = 100 * delta / abs(base) if delta is not None and base else None
            cells.append({"value": value, "delta": delta, "percent": percent, "verdict": verdict(delta, direction), "is_baseline": index == baseline})
        rows.append({"name": name, "direction": direction, "cells": cells})
    return rows


# --- hyperparameters -------------------------------------------------------------------------------------


def flatten(params: dict, prefix: str = "") -> dict:
    """Nested objects become dotted names ({"optimizer": {"lr": 1}} -> {"optimizer.lr": 1}), so a diff points at the leaf."""
    flat = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _canonical(value):
    """A comparable form of a JSON value: 1 equals 1.0, but true is not 1 and "1" is not 1."""
    if isinstance(value, bool) or value is None:
        return ("const", value)
    if isinstance(value, (int, float)):
        return ("number", float(value))
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, list):
        return ("list", tuple(_canonical(v) for v in value))
    if isinstance(value, dict):
        return ("object", tuple(sorted((k, _canonical(v)) for k, v in value.items())))
    return ("other", repr(value))


def same_value(a, b) -> bool:
    """The comparison's one equality of JSON values (MISSING for absent): 1 equals 1.0, true is not 1, "1" is not 1."""
    if a is MISSING or b is MISSING:
        return a is b
    return _canonical(a) == _canonical(b)


def display_value(value) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def parameter_rows(snapshots: list[Snapshot], baseline: int) -> dict:
    """Hyperparameters split into rows whose values differ anywhere (each cell flagged against the baseline) and equal ones."""
    flat = [flatten(snap.hyperparameters) for snap in snapshots]
    changed, equal = [], []
    for name in sorted({name for params in flat for name in params}):
        values = [params.get(name, MISSING) for params in flat]
        forms = [None if v is MISSING else _canonical(v) for v in values]
        base = forms[baseline]
        cells = [
            {"missing": v is MISSING, "text": "" if v is MISSING else display_value(v), "changed": index != baseline and form != base, "is_baseline": index == baseline}
            for index, (v, form) in enumerate(zip(values, forms))
        ]
        (equal if len(set(forms)) == 1 else changed).append({"name": name, "cells": cells})
    return {"changed": changed, "equal": equal}


# --- artifacts -------------------------------------------------------------------------------------------


def status_against(base, value) -> str | None:
    """added / removed / changed / same, with MISSING for "not there"."""
    if base is MISSING and value is MISSING:
        return None
    if base is MISSING:
        return "added"
    if value is MISSING:
        return "removed"
    return "same" if base == value else "changed"


def _counts(rows: list[dict], columns: int, baseline: int) -> list[dict | None]:
    counts = [None if index == baseline else {"added": 0, "removed": 0, "changed": 0, "same": 0} for index in range(columns)]
    for row in rows:
        for index, cell in enumerate(row["cells"]):
            if counts[index] is not None and cell["status"]:
                counts[index][cell["status"]] += 1
    return counts


def artifact_rows(snapshots: list[Snapshot], baseline: int) -> dict:
    """Artifacts keyed by path: SHA-256 and size per version, status against the baseline; identical rows set apart."""
    base_files = snapshots[baseline].artifacts
    differing, identical = [], []
    for path in sorted({path for snap in snapshots for path in snap.artifacts}):
        base_sha = base_files[path][0] if path in base_files else MISSING
        cells = []
        for index, snap in enumerate(snapshots):
            sha, size = snap.artifacts.get(path, (MISSING, None))
            cells.append({
                "sha256": None if sha is MISSING else sha,
                "size": size,
                "status": None if index == baseline else status_against(base_sha, sha),
                "is_baseline": index == baseline,
            })
        row = {"path": path, "cells": cells}
        shas = {cell["sha256"] for cell in cells}
        (identical if len(shas) == 1 and None not in shas else differing).append(row)
    return {"differing": differing, "identical": identical, "counts": _counts(differing + identical, len(snapshots), baseline)}


# --- dependencies ----------------------------------------------------------------------------------------


def parse_requirements(text: str) -> dict[str, str]:
    """requirements.txt as {package: what is asked of it}, parsed with `packaging` (PEP 508).

    The key is the canonical project name (plus the marker when the same project is listed per platform);
    the value is extras, specifier or URL. Pip options and lines that do not parse are kept whole as their own key.
    """
    parsed: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            parsed[line] = "(pip option)"
            continue
        line = line.split(" \\", 1)[0].split(" --hash", 1)[0].strip()
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            parsed[line] = "(not a valid requirement)"
            continue
        key = canonicalize_name(requirement.name)
        if requirement.marker is not None:
            key = f"{key}; {requirement.marker}"
        extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
        wanted = f"@ {requirement.url}" if requirement.url else (str(requirement.specifier) or "any version")
        parsed[key] = f"{extras} {wanted}".strip()
    return parsed


def _keyed_rows(values_per_snapshot: list[dict], baseline: int) -> list[dict]:
    base = values_per_snapshot[baseline]
    rows = []
    for key in sorted({key for values in values_per_snapshot for key in values}):
        cells = []
        for index, values in enumerate(values_per_snapshot):
            value = values.get(key, MISSING)
            cells.append({
                "text": None if value is MISSING else value,
                "status": None if index == baseline else status_against(base.get(key, MISSING), value),
                "is_baseline": index == baseline,
            })
        rows.append({"name": key, "cells": cells, "differs": any(c["status"] in ("added", "removed", "changed") for c in cells)})
    return rows


def dependency_rows(snapshots: list[Snapshot], baseline: int) -> dict:
    """Requirements by package (added / removed / changed specifiers) and the recorded environment facts."""
    packages = _keyed_rows([parse_requirements(snap.requirements) for snap in snapshots], baseline)
    environment = _keyed_rows([{k: v for k, v in snap.environment.items() if v} for snap in snapshots], baseline)
    environment.sort(key=lambda row: ENVIRONMENT_FACTS.index(row["name"]))
    return {
        "packages": [row for row in packages if row["differs"]],
        "unchanged_packages": [row for row in packages if not row["differs"]],
        "environment": environment,
    }


# --- datasets --------------------------------------------------------------------------------------------


def dataset_rows(snapshots: list[Snapshot], baseline: int) -> list[dict]:
    """Datasets keyed by (role, name, uri, digest): a new digest is one dataset removed and another added."""
    base = snapshots[baseline].datasets
    rows = []
    for role, name, uri, digest in sorted({item for snap in snapshots for item in snap.datasets}):
        item = (role, name, uri, digest)
        cells = []
        for index, snap in enumerate(snapshots):
            cells.append({
                "present": item in snap.datasets,
                "status": None if index == baseline else status_against(True if item in base else MISSING, True if item in snap.datasets else MISSING),
                "is_baseline": index == baseline,
            })
        rows.append({"role": role, "name": name, "uri": uri, "digest": digest, "cells": cells})
    return rows


# --- format inspection -----------------------------------------------------------------------------------


def _architecture(inspection: dict) -> str:
    """The architectures config.json names (or its model_type), as the validation report shows them."""
    names: list[str] = []
    for fields in (inspection.get("config") or {}).values():
        for name in fields.get("architectures") or [fields.get("model_type")]:
            if name and str(name) not in names:
                names.append(str(name))
    return ", ".join(names)


def inspection_state(snapshot: Snapshot) -> str:
    """"inspected" (weights or a config were read), "nothing to read" (validation found neither) or "not inspected"."""
    if not snapshot.inspection or "totals" not in snapshot.inspection:
        return "not inspected"
    if snapshot.inspection.get("safetensors") or snapshot.inspection.get("config"):
        return "inspected"
    return "nothing to read"


def _note(state: str, missing: str) -> str:
    """What an empty cell says: the version was not inspected, or it was and had nothing of this kind."""
    return "not inspected" if state == "not inspected" else missing


def inspection_rows(snapshots: list[Snapshot], baseline: int) -> dict:
    """Parameter count (with deltas), tensor count, dtypes and architecture from what the format inspection recorded.

    A version whose inspection read no safetensors file has no parameter count (not zero); one that was not
    inspected yet says so. With nothing read in any version there are no rows.
    """
    states = [inspection_state(snap) for snap in snapshots]
    weights = [snap.inspection["totals"] if state == "inspected" and snap.inspection.get("safetensors") else None for snap, state in zip(snapshots, states)]
    base = weights[baseline]

    def number_row(label: str, key: str) -> dict:
        cells = []
        for index, (total, state) in enumerate(zip(weights, states)):
            value = total.get(key) if total is not None else None
            base_value = base.get(key) if base is not None else None
            delta = value - base_value if index != baseline and value is not None and base_value is not None else None
            cells.append({
                "value": value, "text": f"{value:,}" if value is not None else "", "delta": delta, "delta_text": f"{delta:+,}" if delta else "",
                "changed": bool(delta), "note": _note(state, "no safetensors"), "is_baseline": index == baseline,
            })
        return {"name": label, "numeric": True, "cells": cells}

    def text_row(label: str, values: list[str | None], missing: str) -> dict:
        cells = [
            {"value": value, "changed": index != baseline and value is not None and values[baseline] is not None and value != values[baseline],
             "note": _note(state, missing), "is_baseline": index == baseline}
            for index, (value, state) in enumerate(zip(values, states))
        ]
        return {"name": label, "numeric": False, "cells": cells}

    dtypes = [", ".join(total.get("dtypes") or []) if total is not None else None for total in weights]
    architectures = [(_architecture(snap.inspection) or None) if state == "inspected" else None for snap, state in zip(snapshots, states)]
    rows = []
    if any(weights):
        rows += [number_row("Parameters", "parameters"), number_row("Tensors", "tensors"), text_row("Dtypes", dtypes, "no safetensors")]
    if any(architectures):
        rows.append(text_row("Architecture", architectures, "—"))
    return {"states": states, "rows": rows}


# --- everything ------------------------------------------------------------------------------------------


def compare(snapshots: list[Snapshot], *, baseline: int = 0, directions: dict[str, str] | None = None) -> dict:
    """Every section of the comparison page for these versions (in column order) against `snapshots[baseline]`."""
    directions = directions or {}
    return {
        "metrics": metric_rows(snapshots, baseline, directions),
        "parameters": parameter_rows(snapshots, baseline),
        "artifacts": artifact_rows(snapshots, baseline),
        "dependencies": dependency_rows(snapshots, baseline),
        "datasets": dataset_rows(snapshots, baseline),
        "inspection": inspection_rows(snapshots, baseline),
    }


def _millis(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def metric_history(model: str, rows, changes, *, chosen: set[int], preferred: list[str]) -> dict:
    """One model's metric values over time, for the history chart.

    `rows`: (version number, created_at, current stage, metric name, value), oldest version first;
    `changes`: the production pointer's changes as (changed_at, kind, version number or None, previous number or None).
    The default metric is the first of `preferred` (the compared metrics) that the history has.
    """
    points: dict[int, dict] = {}
    for number, created_at, stage, name, value in rows:
        point = points.setdefault(number, {"number": number, "t": _millis(created_at), "stage": stage, "chosen": number in chosen, "values": {}})
        point["values"][name] = value
    names = sorted({name for point in points.values() for name in point["values"]})
    markers = []
    for changed_at, kind, number, previous in changes:
        if kind == "rollback":
            label = f"rolled back to v{number}"
        elif number is None:
            label = f"v{previous} out of production" if previous else "production emptied"
        else:
            label = f"v{number} to production"
        markers.append({"t": _millis(changed_at), "kind": kind, "label": label})
    markers.sort(key=lambda marker: marker["t"])
    default = next((name for name in preferred if name in names), names[0] if names else None)
    return {"model": model, "metrics": names, "default": default, "points": sorted(points.values(), key=lambda p: (p["t"], p["number"])), "markers": markers}


def chart_data(snapshots: list[Snapshot], metrics: list[dict], history: dict | None, *, baseline: int = 0) -> dict:
    """What compare.js draws, handed over with json_script: bars per metric across the columns, one metric history."""
    return {
        "baseline": baseline,
        "columns": [{"label": snap.label, "key": snap.key, "stage": snap.stage} for snap in snapshots],
        "metrics": [
            {"name": row["name"], "direction": row["direction"], "values": [c["value"] for c in row["cells"]], "verdicts": [c["verdict"] for c in row["cells"]]}
            for row in metrics
        ],
        "history": history,
    }


def unknown_notice(count: int) -> str:
    if count <= 0:
        return ""
    return "1 version is unknown or not visible to you." if count == 1 else f"{count} versions are unknown or not visible to you."
