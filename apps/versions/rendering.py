"""The version JSON rendered straight from rows, for the API's read paths (list, detail, stage lookup).

`serializers.VersionSerializer` declares the version JSON and stays its schema (OpenAPI, the registration's answer).
Building it per version costs a deep copy of its ~70 declared fields, about three quarters of a 200-version list's
CPU, so the read paths render the same JSON from the rows of `apps.catalog.selectors.version_rows` and
`version_page_details` instead: plain dicts, no model instances, URLs from templates reversed once per request.
tests/versions/test_version_rendering.py pins that both produce the same JSON, field by field and in the same order.
The answers are encoded by orjson (`json_bytes`): a 200-version list is ~750 KB, which the json module took ~11 ms to write.
"""

import json
from urllib.parse import quote

import orjson
from django.http import HttpResponse
from django.urls import reverse

# Stand-ins reversed once per request, then made format fields; quoting leaves them as they are, and a reversed,
# quoted, absolute URL holds no literal braces (quote() and iri_to_uri() encode them).
MARKS = {"name": "name-mark-7f3a", "number": 9876543210123, "path": "path-mark-7f3a"}
# reverse() quotes substituted values leaving these characters as they are (RFC 3986 pchar).
URL_SAFE = "!$&'()*+,;=" + "/~:@"


class VersionUrls:
    """The lineage, impact and download URLs of versions, as `reverse()` then `request.build_absolute_uri()` write them.

    build_absolute_uri would resolve '/./' and '/../' segments, but no model name, version number or canonical
    artifact path makes one (apps.models.names, apps.versions.paths), so filling a template gives the same URL.
    """

    def __init__(self, request=None):
        kwargs = {"name": MARKS["name"], "number": MARKS["number"]}
        urls = (
            reverse("api:version-lineage", kwargs=kwargs),
            reverse("api:version-impact", kwargs=kwargs),
            reverse("api:artifact-download", kwargs=kwargs | {"path": MARKS["path"]}),
        )
        if request is not None:
            urls = tuple(request.build_absolute_uri(url) for url in urls)
        for key, mark in MARKS.items():
            urls = tuple(url.replace(str(mark), "{" + key + "}") for url in urls)
        self.graph, self.impact, self.artifact = urls
        self.names: dict[str, str] = {}

    def _name(self, name: str) -> str:
        if name not in self.names:
            self.names[name] = quote(name, safe=URL_SAFE)
        return self.names[name]

    def lineage(self, name: str, number: int) -> dict:
        name = self._name(name)
        return {"graph_url": self.graph.format(name=name, number=number), "impact_url": self.impact.format(name=name, number=number)}

    def download(self, name: str, number: int, path: str) -> str:
        return self.artifact.format(name=self._name(name), number=number, path=quote(path, safe=URL_SAFE))


def raw_json(text):
    """JSON text read from a JSON column (Django's PostgreSQL backend and SQLite both hand it over as text), to be
    sent on as it is: an orjson.Fragment, which orjson writes out verbatim. A 200-version page holds ~1,800 such
    values (check details, rules, hyperparameters, ...); parsing each only to write it out again cost more than the
    rest of the page's rows. The JSON is the same, up to insignificant whitespace."""
    return orjson.Fragment(text) if isinstance(text, (str, bytes)) else text


NO_VALIDATION = {"status": "none", "checks": []}
NO_QUALITY = {"status": "none", "baseline_version": None, "rules": []}
CHECK_KEYS = ("name", "verdict", "summary", "details", "checker_version")


def _instant(value):
    return value.isoformat() if value is not None else None


def _validation(job: dict, checks: list) -> dict:
    return {
        "status": job["status"],
        "job_id": job["id"],
        "attempts": job["attempts"],
        "error": job["error"],
        "created_at": _instant(job["created_at"]),
        "started_at": _instant(job["started_at"]),
        "finished_at": _instant(job["finished_at"]),
        "unsafe_finding": job["unsafe_finding"],
        "checks": [dict(zip(CHECK_KEYS, check)) for check in checks],
    }


def _quality(job: dict) -> dict:
    status = job["quality_status"] or ("pending" if not job["is_finished"] else "none")
    return {"status": status, "baseline_version": job["baseline_number"], "rules": job["quality_rules"]}


def version_rendered(row: dict, details, urls: VersionUrls) -> dict:
    """One version's JSON from its row and its page's details (see `versions_rendered`)."""
    version_id, model_name, number = row["id"], row["model_name"], row["number"]
    job = details.jobs.get(details.latest_job_ids.get(version_id))
    return {
        "id": str(version_id),
        "model": model_name,
        "number": number,
        "stage": row["stage"],
        "description": row["description"],
        "tags": sorted(details.tags.get(version_id, ())),
        "flavor": row["flavor"],
        "hyperparameters": raw_json(row["hyperparameters_json"]),
        "metrics": dict(details.metrics.get(version_id, {})),
        "datasets": [
            {"id": dataset_id, "name": name, "uri": uri, "digest": digest, "size_bytes": size_bytes, "role": role}
            for dataset_id, name, uri, digest, size_bytes, role in details.datasets.get(version_id, ())
        ],
        "code": {
            "repository": row["code_repository"], "commit": row["code_commit"], "branch": row["code_branch"], "dirty": row["code_dirty"],
        },
        "dependencies": {
            "requirements": row["requirements"],
            "python_version": row["python_version"],
            "framework": row["framework"],
            "framework_version": row["framework_version"],
        },
        "environment": raw_json(row["environment_json"]),
        "run": {"id": row["run_run_id"], "url": row["run_url"]} if row["run_pk"] is not None else None,
        "lineage": urls.lineage(model_name, number),
        "artifacts": [
            {"path": path, "size": size, "sha256": sha256, "content_type": content_type, "download_url": urls.download(model_name, number, path)}
            for path, size, sha256, content_type in details.artifacts.get(version_id, ())
        ],
        "inspection": raw_json(row["inspection_json"]),
        "validation": _validation(job, details.checks.get(job["id"], ())) if job is not None else dict(NO_VALIDATION, checks=[]),
        "quality": _quality(job) if job is not None else dict(NO_QUALITY),
        "created_by": row["created_by_name"],
        "created_at": _instant(row["created_at"]),
        "stage_changed_at": _instant(row["stage_changed_at"]),
    }


def versions_rendered(rows: list[dict], details, request=None) -> list[dict]:
    """The JSON of each row (from `version_rows`, with `version_page_details(rows)`), as `VersionSerializer` writes it."""
    urls = VersionUrls(request)
    return [version_rendered(row, details, urls) for row in rows]


def json_bytes(value) -> bytes:
    """`value` as JSON, as DRF's JSONRenderer writes it (UTF-8, compact) up to insignificant formatting such as how a
    float is spelled. orjson, and the json module for the one thing orjson refuses that json writes: integers past 64
    bits (NaN and infinity never reach here: the version document refuses them). The version JSON never needs that:
    what users write into it (hyperparameters, environment) is embedded as text (`raw_json`), never looked into."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def json_response(value, **kwargs) -> HttpResponse:
    return HttpResponse(json_bytes(value), content_type="application/json", **kwargs)
