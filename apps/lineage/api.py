"""Lineage in the API: datasets (list, register, read, impact) and a version's lineage graph and impact."""

from django.contrib.auth.models import Group
from django.urls import reverse
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from apps.accounts.api_errors import error_body
from apps.models.api import Pages
from apps.models.permissions import get_model_for
from apps.versions.models import ModelVersion
from apps.versions.selectors import version_or_404

from .models import Dataset
from .selectors import dataset_or_404, datasets_for_list, impacted_versions, version_lineage_graph
from .services import TEAM_ERROR, dataset_register

DATASET_KEYS = {"name", "uri", "digest", "size_bytes", "description", "team"}


def dataset_to_dict(dataset: Dataset, request=None) -> dict:
    url = reverse("api:dataset", kwargs={"pk": dataset.pk})
    body = {
        "id": dataset.pk,
        "name": dataset.name,
        "uri": dataset.uri,
        "digest": dataset.digest,
        "size_bytes": dataset.size_bytes,
        "description": dataset.description,
        "owner": dataset.owner.get_username() if dataset.owner else None,
        "team": dataset.team.name if dataset.team else None,
        "created_at": dataset.created_at.isoformat(),
        "url": request.build_absolute_uri(url) if request is not None else url,
    }
    if hasattr(dataset, "visible_versions"):
        body["versions_using"] = dataset.visible_versions
    return body


@api_view(["GET", "POST"])
def datasets_collection(request):
    if request.method == "POST":
        data = request.data
        if not isinstance(data, dict):
            return Response(error_body("invalid", "Send a JSON object with 'name' and 'uri' (and optionally digest, size_bytes, description)."), status=400)
        unknown = set(data) - DATASET_KEYS
        if unknown:
            return Response(error_body("invalid", f"Unknown keys: {', '.join(sorted(unknown))}. Allowed: {', '.join(sorted(DATASET_KEYS))}."), status=400)
        team_name = data.get("team")
        if team_name is not None and not isinstance(team_name, str):
            return Response(error_body("invalid", "'team' must be the name of a team you belong to.", {"team": ["must be a string."]}), status=400)
        team = Group.objects.filter(name=team_name).first() if team_name else None
        if team_name and team is None:
            return Response(error_body("invalid", f"team: {TEAM_ERROR}", {"team": [TEAM_ERROR]}), status=400)
        fields = {key: data.get(key) for key in DATASET_KEYS - {"team"}}
        dataset, created = dataset_register(actor=request.user, team=team, **fields)
        return Response(dataset_to_dict(dataset, request), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
    paginator = Pages()
    datasets = datasets_for_list(request.user, search=request.query_params.get("search", "").strip()).select_related("owner", "team")
    page = paginator.paginate_queryset(datasets, request)
    return paginator.get_paginated_response([dataset_to_dict(d, request) for d in page])


@api_view(["GET"])
def dataset_detail(request, pk: int):
    return Response(dataset_to_dict(dataset_or_404(request.user, pk), request))


@api_view(["GET"])
def dataset_impact(request, pk: int):
    """Every version the caller may view trained or evaluated on the dataset, through derived versions too."""
    dataset = dataset_or_404(request.user, pk)
    paginator = Pages()
    page = paginator.paginate_queryset(impacted_versions(request.user, dataset=dataset), request)
    response = paginator.get_paginated_response([item.as_dict() for item in page])
    response.data = {"dataset": dataset_to_dict(dataset, request), **response.data}
    return response


def _version_or_404(user, name: str, number: int) -> ModelVersion:
    return version_or_404(get_model_for(user, name), number)


@api_view(["GET"])
def version_lineage(request, name: str, number: int):
    """The version's lineage graph: nodes (versions, datasets, code, environments) and edges, as the caller may see it."""
    version = _version_or_404(request.user, name, number)
    graph = version_lineage_graph(request.user, version)
    return Response({"model": version.model.name, "version": version.number, **graph.as_json()})


@api_view(["GET"])
def version_impact(request, name: str, number: int):
    """Every version the caller may view derived from this one, transitively."""
    version = _version_or_404(request.user, name, number)
    paginator = Pages()
    page = paginator.paginate_queryset(impacted_versions(request.user, version=version), request)
    return paginator.get_paginated_response([item.as_dict() for item in page])
