from rest_framework.decorators import api_view
from rest_framework.response import Response

from apps.models.permissions import Action, get_model_for
from apps.versions.selectors import production_version, version_or_404
from apps.web.openapi import documented
from apps.web.serializers import validated_body

from django.core.exceptions import ValidationError
from django.http import Http404

from .selectors import card_for, evaluation_results, readme_artifact, readme_card
from .serializers import ModelCardSerializer, ModelCardWriteSerializer
from .services import CARD_FIELDS, card_update


def card_to_dict(card, evaluated) -> dict:
    return {
        **{field: getattr(card, field) if card else "" for field in (*CARD_FIELDS, "source")},
        "updated_at": card.updated_at.isoformat() if card else None,
        "updated_by": card.updated_by.get_username() if card and card.updated_by else None,
        "evaluated_version": evaluated.number if evaluated else None,
        "evaluation_results": evaluation_results(evaluated),
    }


@documented(methods=["GET"], summary="Read a model's card", responses={200: ModelCardSerializer}, errors=[404])
@documented(
    methods=["PUT"], summary="Write a model's card (managers; audited)", request=ModelCardWriteSerializer,
    responses={200: ModelCardSerializer}, errors=[400, 403, 404, 415],
)
@api_view(["GET", "PUT"])
def model_card(request, name: str):
    model = get_model_for(request.user, name, Action.MANAGE if request.method == "PUT" else Action.VIEW)  # before the body is read
    if request.method == "PUT":
        card_update(model=model, actor=request.user, **validated_body(ModelCardWriteSerializer, request))
    return Response(card_to_dict(card_for(model), production_version(model)))


@documented(methods=["GET"], summary="Read a version's card", responses={200: ModelCardSerializer}, errors=[404])
@documented(
    methods=["PUT"], summary="Write a version's card (register permission; audited)", request=ModelCardWriteSerializer,
    responses={200: ModelCardSerializer}, errors=[400, 403, 404, 415],
)
@api_view(["GET", "PUT"])
def version_card(request, name: str, number: int):
    model = get_model_for(request.user, name, Action.REGISTER if request.method == "PUT" else Action.VIEW)  # before the body is read
    version = version_or_404(model, number)
    if request.method == "PUT":
        card_update(model=model, version=version, actor=request.user, **validated_body(ModelCardWriteSerializer, request))
    return Response(card_to_dict(card_for(model, version), version))


@documented(
    methods=["POST"], summary="Fill a version's card from the README.md in its files (YAML front matter included)",
    request=None, responses={200: ModelCardSerializer}, errors=[400, 403, 404],
)
@api_view(["POST"])
def version_card_from_readme(request, name: str, number: int):
    """What the version page offers: the README.md's front matter fills the fields, its Markdown the body (replacing
    the card). A front matter that cannot be read is a 400 saying why; nothing is written."""
    model = get_model_for(request.user, name, Action.REGISTER)
    version = version_or_404(model, number)
    readme = readme_artifact(version)
    if readme is None:
        raise Http404(f"v{number} of '{model.name}' has no README.md at the top of its files.")
    found = readme_card(readme)
    if found["error"]:
        raise ValidationError({"README.md": [found["error"].removesuffix("; its text is used as the body.") + "; fix it or PUT the card."]})
    card_update(model=model, version=version, actor=request.user, source=f"{readme.path} in the artifacts", **found["fields"])
    return Response(card_to_dict(card_for(model, version), version))
