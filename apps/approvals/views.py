from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from apps.catalog.tables import parse_sort
from apps.models.permissions import Action, actions_for, get_model_for, require_rollback
from apps.validation.selectors import latest_job, quality_gates
from apps.versions.aliases import PRODUCTION_ALIAS
from apps.versions.lifecycle import Stage
from apps.versions.models import ModelVersion
from apps.versions.selectors import production_at, production_history
from apps.web.forms import add_validation_errors

from .evidence import comparison_for, provenance_for
from .forms import InboxFilterForm, ApprovalPolicyForm, DecisionForm, OverrideForm, PointInTimeForm, RollbackForm
from .models import GATED_STAGES, RequestStatus
from .selectors import (
    INBOX_COLUMNS,
    INBOX_DEFAULT_SORTS,
    InboxView,
    approval_inbox,
    approval_policy,
    approver_shortfall,
    override_holds,
    production_gate_problems,
    quality_verdict,
    transition_request_for,
    transition_request_is_gated,
    transition_request_is_stale,
    transition_request_policy,
    rollback_candidates,
)
from .services import (
    alias_rollback,
    approval_policy_update,
    transition_request_approve,
    transition_request_override_quality,
    transition_request_reject,
    transition_request_withdraw,
)


def inbox(request: HttpRequest) -> HttpResponse:
    """Requests to review (or the user's own), filtered by model and target stage, sorted by any column; each with its
    validation, the quality gate judged now against production, an unsafe-serialization flag and its age."""
    form = InboxFilterForm(request.GET, views=InboxView.choices)
    filters = form.cleaned_data if form.is_valid() else {}
    view = filters.get("view") or InboxView.REVIEW
    sort, sort_error = parse_sort(request.GET.get("sort", ""), INBOX_COLUMNS, INBOX_DEFAULT_SORTS[view], metrics=False)
    requests = approval_inbox(request.user, view=view, model=filters.get("model", "").strip(), stage=filters.get("stage", ""), sort=sort)
    page = Paginator(requests, 25).get_page(request.GET.get("page"))
    # Production moves and alias moves (whose policy may apply the gates) show the gate as it stands now.
    gates = quality_gates([item.version for item in page if item.to_stage == Stage.PRODUCTION or item.alias])
    for item in page:
        item.gate = gates.get(item.version_id)
    errors = [f"{form.fields[name].label}: {' '.join(messages)}" for name, messages in form.errors.items()] + ([sort_error] if sort_error else [])
    context = {"page": page, "form": form, "view": view, "InboxView": InboxView, "sort": sort, "sort_columns": INBOX_COLUMNS, "table_errors": errors}
    return render(request, "approvals/inbox.html", context, status=400 if errors else 200)


def review(request: HttpRequest, pk: int) -> HttpResponse:
    transition = transition_request_for(request.user, pk)
    version, model = transition.version, transition.version.model
    required, group = transition_request_policy(transition)
    pending_production = transition.status == RequestStatus.PENDING and transition_request_is_gated(transition)
    verdict = quality_verdict(version) if pending_production else None
    comparison = comparison_for(transition)
    context = {
        "model": model,
        "version": version,
        "job": latest_job(version),
        "actions": actions_for(request.user, model),
        "transition": transition,
        "required": required,
        "approver_group": group,
        "stale": transition.status == RequestStatus.PENDING and transition_request_is_stale(transition),
        "verdict": verdict,
        "override_holds": verdict is not None and override_holds(transition, verdict),
        "gate_problems": production_gate_problems(version, transition, verdict) if pending_production else [],
        "shortfall": approver_shortfall(transition),
        "comparison": comparison,
        "provenance": provenance_for(request.user, version, comparison["production"]),
        "decision_form": DecisionForm(),
        "override_form": OverrideForm(),
        "is_requester": transition.requested_by_id == request.user.pk,
    }
    return render(request, "approvals/review.html", context)


def _decide(service, success: str, form_class=DecisionForm):
    @require_POST
    def view(request: HttpRequest, pk: int) -> HttpResponse:
        transition = transition_request_for(request.user, pk)
        form = form_class(request.POST)
        if not form.is_valid():
            messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
            return redirect("approvals:review", pk=pk)
        try:
            decided = service(transition_request=transition, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            applied = f" v{decided.version.number} is now in {decided.to_stage}." if decided.status == RequestStatus.APPLIED else ""
            messages.success(request, success + applied)
        return redirect("approvals:review", pk=pk)

    return view


approve = _decide(transition_request_approve, "Approved.")
reject = _decide(transition_request_reject, "Rejected; the requester sees your comment.")
override = _decide(transition_request_override_quality, "Quality gate overridden; the reason is in the audit log.", OverrideForm)


@require_POST
def withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    transition = transition_request_for(request.user, pk)
    transition_request_withdraw(transition_request=transition, actor=request.user)
    messages.success(request, "Request withdrawn.")
    return redirect("approvals:review", pk=pk)


@require_POST
def rollback(request: HttpRequest, name: str) -> HttpResponse:
    model = get_model_for(request.user, name)
    require_rollback(request.user, model)  # before the form reads the body
    form = RollbackForm(request.POST, candidates=rollback_candidates(model))
    if not form.is_valid():
        messages.error(request, "Give a reason for the rollback.")
        return redirect("models:detail", name=model.name)
    number = form.cleaned_data["to_version"]
    try:
        change = alias_rollback(
            model=model, alias=PRODUCTION_ALIAS, actor=request.user, reason=form.cleaned_data["reason"],
            to_version=ModelVersion.objects.get(model=model, number=number) if number else None,
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Production rolled back to v{change.version.number}.")
    return redirect("models:detail", name=model.name)


def pointer_history(request: HttpRequest, name: str) -> HttpResponse:
    model = get_model_for(request.user, name)
    form = PointInTimeForm(request.GET or None)
    at_result = None
    if form.is_valid() and form.cleaned_data["at"]:
        at_result = {"at": form.cleaned_data["at"], "version": production_at(model, form.cleaned_data["at"])}
    page = Paginator(production_history(model), 50).get_page(request.GET.get("page"))
    return render(request, "approvals/pointer_history.html", {"model": model, "page": page, "form": form, "at_result": at_result, "now": timezone.now()})


@require_http_methods(["GET", "POST"])
def policy_edit(request: HttpRequest, name: str) -> HttpResponse:
    model = get_model_for(request.user, name, Action.MANAGE)
    current = {stage: approval_policy(model, stage) for stage in GATED_STAGES}
    initial = {f"{stage}_required": required for stage, (required, _) in current.items()} | {f"{stage}_group": group for stage, (_, group) in current.items()}
    form = ApprovalPolicyForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            approval_policy_update(model=model, actor=request.user, policies={s: (data[f"{s}_required"], data[f"{s}_group"]) for s in GATED_STAGES})
        except ValidationError as exc:
            add_validation_errors(form, exc)
        else:
            messages.success(request, "Approval policy saved.")
            return redirect("models:detail", name=model.name)
    return render(request, "approvals/policy_edit.html", {"model": model, "form": form}, status=400 if form.errors else 200)


