from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.web.forms import add_validation_errors
from apps.models.permissions import Action, actions_for, get_model_for
from apps.versions.models import ModelVersion
from apps.versions.selectors import version_or_404

from .forms import QualityRuleFormSet, ValidationPolicyForm
from .models import ValidationPolicy
from .selectors import latest_job
from .services import validation_policy_update, validation_rerun

RULE_FIELDS = ("metric", "direction", "allowed_regression", "regression_kind", "min_value", "max_value")


def job_panel_context(model, version, user) -> dict:
    return {"model": model, "version": version, "job": latest_job(version), "actions": actions_for(user, model)}


@require_GET
def job_panel(request: HttpRequest, name: str, number: int) -> HttpResponse:
    """The validation report as a fragment; the version page polls it with htmx until the job is finished."""
    model = get_model_for(request.user, name)
    version = version_or_404(model, number)
    return render(request, "validation/partials/job_panel.html", job_panel_context(model, version, request.user))


@require_POST
def job_rerun(request: HttpRequest, name: str, number: int) -> HttpResponse:
    model = get_model_for(request.user, name, Action.MANAGE)
    version = version_or_404(model, number)
    validation_rerun(version=version, actor=request.user)
    messages.success(request, f"Validation of v{version.number} queued again.")
    return redirect("versions:detail", name=model.name, number=version.number)


@require_http_methods(["GET", "POST"])
def policy_edit(request: HttpRequest, name: str) -> HttpResponse:
    model = get_model_for(request.user, name, Action.MANAGE)
    policy = ValidationPolicy.objects.filter(model=model).select_related("pinned_baseline").first()
    numbers = list(ModelVersion.objects.filter(model=model).order_by("-number").values_list("number", flat=True)[:200])
    initial = {
        "required_file_patterns": "\n".join(policy.required_file_patterns) if policy else "",
        "pinned_baseline": policy.pinned_baseline.number if policy and policy.pinned_baseline else None,
    }
    rules_initial = [{f: getattr(rule, f) for f in RULE_FIELDS} for rule in (policy.rules.all() if policy else [])]
    form = ValidationPolicyForm(request.POST or None, initial=initial, version_numbers=numbers)
    rules = QualityRuleFormSet(request.POST or None, initial=rules_initial, prefix="rules")
    if request.method == "POST" and form.is_valid() and rules.is_valid():
        chosen = [r for r in rules.cleaned_data if r and not r.get("DELETE")]
        pinned = form.cleaned_data["pinned_baseline"]
        try:
            validation_policy_update(
                model=model, actor=request.user,
                required_file_patterns=form.cleaned_data["required_file_patterns"],
                pinned_baseline=ModelVersion.objects.get(model=model, number=pinned) if pinned else None,
                rules=[{f: r[f] for f in RULE_FIELDS} for r in chosen],
            )
        except ValidationError as exc:
            add_validation_errors(form, exc)
        else:
            messages.success(request, "Validation policy saved. It applies to validations from now on.")
            return redirect("models:detail", name=model.name)
    status = 400 if request.method == "POST" else 200
    return render(request, "validation/policy_edit.html", {"model": model, "form": form, "rules": rules}, status=status)
