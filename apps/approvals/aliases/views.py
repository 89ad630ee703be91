"""Alias pages: the alias page (its version, history, "at T", policy, rollback) and the writes the model page, the
version page and the alias page post. Each write calls one approvals service."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.models.permissions import Action, actions_for, get_model_for, require_rollback
from apps.versions.aliases import PRODUCTION_ALIAS, alias_from_url, canonical_alias_name, validate_alias_name
from apps.versions.models import ModelVersion
from apps.versions.selectors import alias_at, alias_history, alias_rollback_candidates, version_at_alias, version_or_404
from apps.web.forms import add_validation_errors, form_errors_text

from ..selectors import alias_policy, pending_pointer_requests
from ..services import ApprovalRequired, alias_delete, alias_policy_update, alias_rollback, alias_set, transition_request_create
from .forms import AliasDeleteForm, AliasRollbackForm, AliasPointInTimeForm, AliasPolicyForm, AliasSetForm


def _back(model, alias: str, where: str, number: int | None):
    if where == "version" and number:
        return redirect("versions:detail", name=model.name, number=number)
    if where == "alias" and alias:
        try:
            validate_alias_name(alias)
        except ValidationError:
            return redirect("models:detail", name=model.name)
        return redirect("aliases:detail", name=model.name, alias=alias)
    return redirect("models:detail", name=model.name)


def alias_detail(request: HttpRequest, name: str, alias: str) -> HttpResponse:
    model = get_model_for(request.user, name)
    alias = alias_from_url(alias)
    version = version_at_alias(model, alias)
    rules = alias_policy(model, alias)
    form = AliasPointInTimeForm(request.GET or None)
    at_result = None
    if form.is_valid() and form.cleaned_data["at"]:
        at_result = {"at": form.cleaned_data["at"], "version": alias_at(model, alias, form.cleaned_data["at"])}
    group = rules.approver_group
    return render(request, "approvals/alias_detail.html", {
        "model": model, "alias": alias, "version": version, "rules": rules, "builtin": alias == PRODUCTION_ALIAS, "actions": actions_for(request.user, model),
        "page": Paginator(alias_history(model, alias), 50).get_page(request.GET.get("page")), "form": form, "at_result": at_result,
        "rollback_form": AliasRollbackForm(candidates=alias_rollback_candidates(model, alias, version)),
        "set_form": AliasSetForm(initial={"alias": alias, "back": "alias"}),
        "policy_form": AliasPolicyForm(initial={"required_approvals": rules.required_approvals, "approver_group": group, "gates": rules.gates}),
        "pending": pending_pointer_requests(model, alias)[:20],
    })


@require_POST
def alias_set_view(request: HttpRequest, name: str) -> HttpResponse:
    """Set or move an alias. A governed one is requested for review instead, with the reason as justification."""
    model = get_model_for(request.user, name, Action.REQUEST_TRANSITION)
    form = AliasSetForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Alias not set: {form_errors_text(form)} Give the alias's name and the version number to point it at.")
        return _back(model, "", request.POST.get("back", ""), None)
    data = form.cleaned_data
    alias, version = canonical_alias_name(data["alias"]), version_or_404(model, data["version"])
    try:
        alias_set(model=model, alias=alias, version=version, actor=request.user, reason=data["reason"])
    except ApprovalRequired as exc:
        if not data["reason"].strip():
            messages.error(request, f"{alias} needs {exc.required} approval(s) to move: give a reason and it is requested for review.")
            return _back(model, alias, data["back"], version.number)
        return _request_review(request, model, alias, version, data)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"@{alias} now points at v{version.number}.")
    return _back(model, alias, data["back"], version.number)


def _request_review(request, model, alias: str, version: ModelVersion, data: dict) -> HttpResponse:
    try:
        created = transition_request_create(version=version, alias=alias, actor=request.user, justification=data["reason"])
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return _back(model, alias, data["back"], version.number)
    messages.success(request, f"Requested: @{alias} to v{version.number}. Approvers see it in their inbox.")
    return redirect("approvals:review", pk=created.pk)


@require_POST
def alias_delete_view(request: HttpRequest, name: str, alias: str) -> HttpResponse:
    model = get_model_for(request.user, name, Action.REQUEST_TRANSITION)
    alias = alias_from_url(alias)
    form = AliasDeleteForm(request.POST)
    number = getattr(version_at_alias(model, alias), "number", None)
    if not form.is_valid():
        messages.error(request, f"@{alias} not deleted: {form_errors_text(form)}")
        return _back(model, alias, request.POST.get("back", ""), number)
    try:
        alias_delete(model=model, alias=alias, actor=request.user, reason=form.cleaned_data["reason"])
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"@{alias} deleted." if alias != PRODUCTION_ALIAS else "Production taken down.")
    return _back(model, alias, form.cleaned_data["back"], number)


@require_POST
def alias_rollback_view(request: HttpRequest, name: str, alias: str) -> HttpResponse:
    model = get_model_for(request.user, name)
    require_rollback(request.user, model)  # before the body is read
    alias = alias_from_url(alias)
    current = version_at_alias(model, alias)
    form = AliasRollbackForm(request.POST, candidates=alias_rollback_candidates(model, alias, current))
    if not form.is_valid():
        messages.error(request, f"Not rolled back: {form_errors_text(form)}")
        return redirect("aliases:detail", name=model.name, alias=alias)
    number = form.cleaned_data["to_version"]
    try:
        change = alias_rollback(
            model=model, alias=alias, actor=request.user, reason=form.cleaned_data["reason"],
            to_version=version_or_404(model, number) if number else None,
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"@{alias} rolled back to v{change.version.number}.")
    return redirect("aliases:detail", name=model.name, alias=alias)


@require_POST
def alias_policy_view(request: HttpRequest, name: str, alias: str) -> HttpResponse:
    model = get_model_for(request.user, name, Action.MANAGE)
    alias = alias_from_url(alias)
    form = AliasPolicyForm(request.POST)
    if form.is_valid():
        try:
            alias_policy_update(model=model, alias=alias, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_validation_errors(form, exc)
        else:
            messages.success(request, f"Policy of @{alias} saved.")
            return redirect("aliases:detail", name=model.name, alias=alias)
    messages.error(request, form_errors_text(form))
    return redirect("aliases:detail", name=model.name, alias=alias)
