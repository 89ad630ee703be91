"""Lineage in the API: datasets (list, register, read, impact) and a version's lineage graph and impact."""

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from apps.web.lists import paginated
from apps.web.openapi import documented, filter_parameters, page_parameters, page_schema
from apps.web.serializers import validated_body
from apps.models.permissions import get_model_for
from apps.versions.models import ModelVersion
from apps.versions.selectors import version_or_404

from .filters import DatasetFilter
from .models import Dataset
from .selectors import ImpactedVersion, dataset_or_404, datasets_for_list, impacted_versions, version_lineage_graph
from .serializers import DatasetRegistrationSerializer
from .services import dataset_register

IMPACT_PAGE = page_schema(OpenApiTypes.OBJECT, "ImpactedVersion")


class RegisteredDatasetSerializer(serializers.Serializer):
    """A dataset as `dataset_to_dict` renders it (`versions_using` in lists only)."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    uri = serializers.CharField()
    digest = serializers.CharField(allow_blank=True)
    size_bytes = serializers.IntegerField(allow_null=True)
    description = serializers.CharField(allow_blank=True)
    owner = serializers.CharField(allow_null=True)
    team = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    url = serializers.URLField()
    versions_using = serializers.IntegerField(required=False)


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


@documented(
    methods=["GET"],
    summary="List the datasets you may see",
    operation_id="datasets_list",
    parameters=filter_parameters(DatasetFilter),
    responses={200: page_schema(RegisteredDatasetSerializer, "RegisteredDataset")},
    errors=[400],
)
@documented(
    methods=["POST"],
    summary="Register a dataset (200 with the existing one when the URI and digest are already registered)",
    request=DatasetRegistrationSerializer,
    responses={201: RegisteredDatasetSerializer, 200: RegisteredDatasetSerializer},
    errors=[400, 415],
)
@api_view(["GET", "POST"])
def datasets_collection(request):
    if request.method == "POST":
        body = validated_body(DatasetRegistrationSerializer, request)
        dataset, created = dataset_register(actor=request.user, team=body["team"], **body["dataset"])
        return Response(dataset_to_dict(dataset, request), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
    datasets = datasets_for_list(request.user).select_related("owner", "team")
    return paginated(request, datasets, lambda dataset: dataset_to_dict(dataset, request), filterset_class=DatasetFilter)


@documented(summary="Read a dataset", responses={200: RegisteredDatasetSerializer}, errors=[404])
@api_view(["GET"])
def dataset_detail(request, pk: int):
    return Response(dataset_to_dict(dataset_or_404(request.user, pk), request))


@documented(
    summary="Versions trained or evaluated on the dataset, and versions derived from them",
    parameters=page_parameters(),
    responses={200: IMPACT_PAGE},
    errors=[400, 404],
)
@api_view(["GET"])
def dataset_impact(request, pk: int):
    """Every version the caller may view trained or evaluated on the dataset, through derived versions too."""
    dataset = dataset_or_404(request.user, pk)
    response = paginated(request, impacted_versions(request.user, dataset=dataset), ImpactedVersion.as_dict)
    response.data = {"dataset": dataset_to_dict(dataset, request), **response.data}
    return response


def _version_or_404(user, name: str, number: int) -> ModelVersion:
    return version_or_404(get_model_for(user, name), number)


@documented(
    summary="A version's lineage graph (nodes and edges you may see)",
    responses={200: OpenApiTypes.OBJECT},
    errors=[404],
)
@api_view(["GET"])
def version_lineage(request, name: str, number: int):
    """The version's lineage graph: nodes (versions, datasets, code, environments) and edges, as the caller may see it."""
    version = _version_or_404(request.user, name, number)
    graph = version_lineage_graph(request.user, version)
    return Response({"model": version.model.name, "version": version.number, **graph.as_json()})


@documented(
    summary="Versions derived from this one, transitively",
    parameters=page_parameters(),
    responses={200: IMPACT_PAGE},
    errors=[400, 404],
)
@api_view(["GET"])
def version_impact(request, name: str, number: int):
    """Every version the caller may view derived from this one, transitively."""
    version = _version_or_404(request.user, name, number)
    return paginated(request, impacted_versions(request.user, version=version), ImpactedVersion.as_dict)
