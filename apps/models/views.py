from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from guardian.shortcuts import get_groups_with_perms, get_users_with_perms

from apps.approvals.forms import RollbackForm
from apps.approvals.selectors import approver_shortfalls, pointers_with_policies, rollback_candidates
from apps.catalog.tables import (
    MODEL_COLUMNS,
    MODEL_DEFAULT_SORT,
    VERSION_COLUMNS,
    VERSION_DEFAULT_SORT,
    DEFAULT_VERSION_METRICS,
    metric_cells,
    metric_columns,
    models_table,
    parse_sort,
    production_metric_names,
    production_metrics,
    version_metric_names,
    versions_table,
)
from apps.versions.lifecycle import Stage
from apps.versions.selectors import aliases_by_version, deployments_with_drift, models_with_pointers, production_history
from apps.web.forms import add_validation_errors
from apps.web.keyset import Position, Seeking, counted, keyset_page

from .filters import RegisteredModelFilter
from .forms import PermissionGrantForm, RegisteredModelEditForm, RegisteredModelForm
from .permissions import Action, actions_for, get_model_for, visible_models
from .services import model_create, model_permission_grant, model_permission_revoke, model_update

PAGE_SIZE = 25


def model_list(request: HttpRequest) -> HttpResponse:
    visible = visible_models(request.user)
    filterset = RegisteredModelFilter(request.GET, queryset=models_with_pointers(visible).select_related("team").prefetch_related("tags"))
    sort, sort_error = parse_sort(request.GET.get("sort", ""), MODEL_COLUMNS, MODEL_DEFAULT_SORT)
    metrics, metrics_error = metric_columns(request.session, "models", request.GET.getlist("metrics"), [])
    page = Paginator(models_table(filterset.qs.distinct(), sort=sort), PAGE_SIZE).get_page(request.GET.get("page"))
    values = production_metrics(list(page), metrics)
    metric_cells(page.object_list, metrics, lambda model: values[model.pk])
    errors = [error for error in (sort_error, metrics_error) if error]
    context = {
        "filter": filterset, "page": page, "sort": sort, "sort_columns": MODEL_COLUMNS, "metrics": metrics,
        "metric_choices": list(dict.fromkeys([*production_metric_names(visible), *metrics])), "table_errors": errors,
    }
    return render(request, "models/model_list.html", context, status=400 if errors else 200)


@require_http_methods(["GET", "POST"])
def model_create_view(request: HttpRequest) -> HttpResponse:
    form = RegisteredModelForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            model = model_create(actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_validation_errors(form, exc)
        else:
            messages.success(request, f"Model '{model.name}' created. Upload its first version next.")
            return redirect("models:detail", name=model.name)
    return render(request, "models/model_form.html", {"form": form}, status=400 if form.errors else 200)


def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    model = get_model_for(request.user, name, for_page=True)
    table = _versions_table(request, model)
    history = production_history(model)[:10]
    production, aliases = pointers_with_policies(model)  # once for the page: the cards, the badges and the drift
    names = aliases_by_version(aliases)
    for version in table["versions"]:
        version.alias_names = names.get(version.pk, ())
    return render(
        request,
        "models/model_detail.html",
        {
            "model": model, "history": history, "production": production, **table,
            "actions": actions_for(request.user, model),
            "deployments": deployments_with_drift(model, production, history[0] if history else None, aliases),
            "aliases": aliases,
            "rollback_form": RollbackForm(candidates=rollback_candidates(model, production)),
            "approver_shortfalls": approver_shortfalls(model),
        },
        status=400 if table["table_errors"] else 200,
    )


def _versions_table(request: HttpRequest, model) -> dict:
    """The model page's versions table: filtered by stage, sorted by `?sort=` (any column or metric.<name>), with the
    metric columns `?metrics=` names (remembered for this model in the session; else the model's most common ones)."""
    stage = request.GET.get("stage", "")
    sort, sort_error = parse_sort(request.GET.get("sort", ""), VERSION_COLUMNS, VERSION_DEFAULT_SORT)
    names = version_metric_names(model)
    metrics, metrics_error = metric_columns(request.session, f"model:{model.pk}", request.GET.getlist("metrics"), names[:DEFAULT_VERSION_METRICS])
    queryset = versions_table(model, stage=stage if stage in Stage.values else "", sort=sort, metrics=metrics)
    versions = _versions_page(request, queryset, sort, model)
    metric_cells(list(versions), metrics, lambda version: {metric.name: metric.value for metric in version.shown_metrics})
    stage_error = f"There is no stage {stage!r}; showing every stage." if stage and stage not in Stage.values else ""
    return {
        "versions": versions, "stage": stage, "sort": sort, "sort_columns": VERSION_COLUMNS, "metrics": metrics,
        "metric_choices": list(dict.fromkeys([*names, *metrics])),
        "table_errors": [error for error in (stage_error, sort_error, metrics_error) if error],
    }


def _versions_page(request: HttpRequest, queryset, sort, model):
    """Sorted by number (the default), a keyset page (first / previous / next / last: the same cost at any depth,
    apps.web.keyset) with the count estimated past COUNT_ESTIMATE_ABOVE; for an old `?page=` link, that numbered page
    (found through the number alone); sorted otherwise, a numbered page."""
    if sort.key != "number":
        return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))
    if "page" in request.GET:
        return Paginator(Seeking(queryset, key="number", descending=sort.descending), PAGE_SIZE).get_page(request.GET.get("page"))
    page = keyset_page(queryset, key="number", descending=sort.descending, size=PAGE_SIZE, position=Position.from_query(request.GET))
    page.count, page.count_estimated = counted(queryset, at_most=model.last_version_number)
    return page


@require_http_methods(["GET", "POST"])
def model_edit(request: HttpRequest, name: str) -> HttpResponse:
    model = get_model_for(request.user, name, Action.MANAGE)
    initial = {"description": model.description, "team": model.team, "tags": ", ".join(sorted(model.tags.names()))}
    form = RegisteredModelEditForm(request.POST or None, user=request.user, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            model_update(model=model, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_validation_errors(form, exc)
        else:
            messages.success(request, "Model updated.")
            return redirect("models:detail", name=model.name)
    return render(request, "models/model_edit.html", {"form": form, "model": model}, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def model_permissions(request: HttpRequest, name: str) -> HttpResponse:
    model = get_model_for(request.user, name, Action.MANAGE)
    form = PermissionGrantForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        model_permission_grant(
            model=model, actor=request.user, action=form.cleaned_data["action"],
            user=form.cleaned_data.get("user"), group=form.cleaned_data.get("group"),
        )
        messages.success(request, "Permission granted.")
        return redirect("models:permissions", name=model.name)
    users = get_users_with_perms(model, attach_perms=True, with_group_users=False)
    groups = get_groups_with_perms(model, attach_perms=True)
    return render(
        request,
        "models/model_permissions.html",
        {"model": model, "form": form, "users": sorted(users.items(), key=lambda i: i[0].username),
         "groups": sorted(groups.items(), key=lambda i: i[0].name), "labels": dict(Action.choices)},
        status=400 if form.errors else 200,
    )


@require_POST
def model_permission_revoke_view(request: HttpRequest, name: str) -> HttpResponse:
    model = get_model_for(request.user, name, Action.MANAGE)
    action = request.POST.get("action", "")
    if action not in Action.values:
        messages.error(request, "Unknown permission; reload the page and try again.")
        return redirect("models:permissions", name=model.name)
    user = group = None
    holder_id = request.POST.get("user") or request.POST.get("group") or ""
    if not holder_id.isdigit():
        messages.error(request, "Unknown user or team; reload the page and try again.")
        return redirect("models:permissions", name=model.name)
    if request.POST.get("user"):
        user = get_object_or_404(get_user_model(), pk=holder_id)
    else:
        group = get_object_or_404(Group, pk=holder_id)
    try:
        model_permission_revoke(model=model, actor=request.user, action=action, user=user, group=group)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Permission revoked.")
    return redirect("models:permissions", name=model.name)
