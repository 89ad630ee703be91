"""Lineage in the API: datasets (list, register, read, impact) and a version's lineage graph and impact."""

from drf_spectacular.types import OpenApiTypes
from rest_framework import status
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
from .serializers import DatasetRegistrationSerializer, RegisteredDatasetSerializer
from .services import dataset_register

IMPACT_PAGE = page_schema(OpenApiTypes.OBJECT, "ImpactedVersion")


def dataset_to_dict(dataset: Dataset, request=None) -> dict:
    return RegisteredDatasetSerializer(dataset, context={"request": request}).data


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
