from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from apps.web.forms import add_validation_errors
from apps.models.permissions import get_model_for
from apps.versions.selectors import version_or_404

from .forms import DatasetForm
from .selectors import dataset_or_404, datasets_for_list, impacted_versions, version_lineage_graph
from .services import dataset_register

PAGE_SIZE = 25
IMPACT_PAGE_SIZE = 100


@require_http_methods(["GET", "POST"])
def dataset_list(request: HttpRequest) -> HttpResponse:
    """The datasets the user may see (see `visible_datasets`), and the "New dataset" form any logged-in user may use."""
    form = DatasetForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            dataset, created = dataset_register(actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_validation_errors(form, exc)
        else:
            if created:
                messages.success(request, f"Dataset '{dataset}' registered.")
            else:
                messages.info(request, f"A dataset with this URI and digest is already registered: '{dataset}'.")
            return redirect("lineage:dataset", pk=dataset.pk)
    search = request.GET.get("q", "").strip()
    page = Paginator(datasets_for_list(request.user, search=search), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "lineage/dataset_list.html", {"page": page, "form": form, "search": search}, status=400 if form.errors else 200)


def dataset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = dataset_or_404(request.user, pk)
    impact = impacted_versions(request.user, dataset=dataset)
    page = Paginator(impact, IMPACT_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "lineage/dataset_detail.html", {"dataset": dataset, "page": page, "impact_count": len(impact)})


def version_lineage(request: HttpRequest, name: str, number: int) -> HttpResponse:
    model = get_model_for(request.user, name)
    version = version_or_404(model, number)
    graph = version_lineage_graph(request.user, version)
    return render(
        request,
        "lineage/version_lineage.html",
        {"model": model, "version": version, "graph": graph, "impact": impacted_versions(request.user, version=version)},
    )
