import csv
import json

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from apps.models.permissions import Action, can, get_model_for
from apps.models.selectors import audit_entries_for_listing

from .filters import AuditEntryFilter
from .models import AuditEntry
from .permissions import require_auditor

PAGE_SIZE = 50
CSV_COLUMNS = [
    "sequence", "created_at", "actor", "action", "object_type", "object_id", "object_repr", "model",
    "before", "after", "request_id", "previous_hash", "entry_hash",
]


def audit_list(request: HttpRequest) -> HttpResponse:
    require_auditor(request.user)
    return _entries_page(request, audit_entries_for_listing(), "audit/audit_list.html", csv_name="audit-log")


# Entries about who may do what and where events go are for the model's managers (webhook URLs can carry secrets).
MANAGER_ONLY_ACTIONS = ("webhook.", "model.permission_", "approval_policy.", "validation_policy.", "api_token.")


def model_audit(request: HttpRequest, name: str) -> HttpResponse:
    model = get_model_for(request.user, name)
    entries = audit_entries_for_listing(model.pk)
    if not can(request.user, Action.MANAGE, model):
        for prefix in MANAGER_ONLY_ACTIONS:
            entries = entries.exclude(action__startswith=prefix)
    return _entries_page(request, entries, "audit/model_audit.html", csv_name=f"audit-{model.name}", context={"model": model})


def _entries_page(request: HttpRequest, entries: QuerySet[AuditEntry], template: str, *, csv_name: str, context: dict | None = None) -> HttpResponse:
    filterset = AuditEntryFilter(request.GET, queryset=entries)
    if request.GET.get("format") == "csv":
        return _csv_response(filterset.qs, f"{csv_name}-{timezone.now():%Y%m%d-%H%M%S}.csv")
    page = Paginator(filterset.qs, PAGE_SIZE).get_page(request.GET.get("page"))
    actions = entries.order_by("action").values_list("action", flat=True).distinct()
    return render(request, template, {"filter": filterset, "page": page, "actions": actions, **(context or {})})


class _Echo:
    """A file-like object whose write() hands the line back, so csv.writer can feed a streaming response."""

    def write(self, value: str) -> str:
        return value


def _cell(value: str) -> str:
    # Spreadsheets run cells that start like a formula; a leading quote keeps such text as text.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _csv_row(entry: AuditEntry) -> list:
    return [
        entry.sequence, entry.created_at.isoformat(), _cell(entry.actor_name), _cell(entry.action),
        f"{entry.object_type.app_label}.{entry.object_type.model}", _cell(entry.object_id), _cell(entry.object_repr),
        entry.model_name or "",
        "" if entry.before is None else json.dumps(entry.before, sort_keys=True, ensure_ascii=False),
        "" if entry.after is None else json.dumps(entry.after, sort_keys=True, ensure_ascii=False),
        entry.request_id, entry.previous_hash, entry.entry_hash,
    ]


def _csv_response(entries: QuerySet[AuditEntry], filename: str) -> StreamingHttpResponse:
    """Every filtered row, streamed: memory stays flat however long the log is."""
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(CSV_COLUMNS)
        for entry in entries.iterator(chunk_size=1000):
            yield writer.writerow(_csv_row(entry))

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
