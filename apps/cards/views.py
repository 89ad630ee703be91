from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from apps.models.permissions import Action, get_model_for
from apps.versions.selectors import production_version, version_or_404
from apps.web.forms import add_validation_errors

from .forms import CardPreviewForm, ModelCardForm
from .selectors import card_for, evaluation_results, readme_artifact, readme_card
from .services import CARD_FIELDS, card_update


def _edit(request: HttpRequest, model, version, *, initial: dict, offer: dict | None, done) -> HttpResponse:
    form = ModelCardForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            card_update(model=model, version=version, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_validation_errors(form, exc)
        else:
            messages.success(request, "Card saved.")
            return done
    evaluated = version if version is not None else production_version(model)
    context = {"model": model, "version": version, "form": form, "offer": offer, "evaluation": evaluation_results(evaluated), "evaluated": evaluated}
    return render(request, "cards/card_edit.html", context, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def model_card_edit(request: HttpRequest, name: str) -> HttpResponse:
    model = get_model_for(request.user, name, Action.MANAGE)
    card = card_for(model)
    initial = {field: getattr(card, field) for field in CARD_FIELDS} if card else {"body": model.description}
    return _edit(request, model, None, initial=initial, offer=None, done=redirect("models:detail", name=model.name))


@require_http_methods(["GET", "POST"])
def version_card_edit(request: HttpRequest, name: str, number: int) -> HttpResponse:
    """A version's card; `?from=readme` fills the form from the README.md in its artifacts (front matter included)."""
    model = get_model_for(request.user, name, Action.REGISTER)
    version = version_or_404(model, number)
    card, readme = card_for(model, version), readme_artifact(version)
    initial = {field: getattr(card, field) for field in CARD_FIELDS} if card else {"body": version.description}
    offer = readme_card(readme) if readme is not None and request.GET.get("from") == "readme" else None
    if offer is not None:
        initial = {**{field: "" for field in CARD_FIELDS}, **offer["fields"], "source": f"{readme.path} in the artifacts"}
    return _edit(request, model, version, initial=initial, offer=offer, done=redirect("versions:detail", name=model.name, number=version.number))


@require_POST
def card_preview(request: HttpRequest, name: str) -> HttpResponse:
    """The card's Markdown rendered as the card will show it (htmx swaps it in while the author types)."""
    get_model_for(request.user, name)
    form = CardPreviewForm(request.POST)
    if not form.is_valid():
        return render(request, "cards/partials/preview.html", {"error": " ".join(form.errors["body"])}, status=400)
    return render(request, "cards/partials/preview.html", {"body": form.cleaned_data["body"]})
