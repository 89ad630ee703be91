from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from apps.versions.selectors import models_with_pointers
from apps.web.lists import paginated
from apps.web.openapi import documented, filter_parameters, page_schema
from apps.web.serializers import validated_body

from .filters import RegisteredModelApiFilter
from .models import RegisteredModel
from .permissions import Action, get_model_for, visible_models
from .serializers import RegisteredModelCreateSerializer, RegisteredModelSerializer, RegisteredModelUpdateSerializer
from .services import model_create, model_update


def model_to_dict(model: RegisteredModel) -> dict:
    return RegisteredModelSerializer(model).data


@documented(
    methods=["GET"],
    summary="List the models you may see",
    operation_id="models_list",
    parameters=filter_parameters(RegisteredModelApiFilter),
    responses={200: page_schema(RegisteredModelSerializer, "RegisteredModel")},
    errors=[400],
)
@documented(methods=["POST"], summary="Create a model (you become its manager)", request=RegisteredModelCreateSerializer, responses={201: RegisteredModelSerializer}, errors=[400, 415])
@api_view(["GET", "POST"])
def models_collection(request):
    if request.method == "POST":
        model = model_create(actor=request.user, **validated_body(RegisteredModelCreateSerializer, request))
        return Response(model_to_dict(model), status=status.HTTP_201_CREATED)
    queryset = models_with_pointers(visible_models(request.user)).select_related("team").prefetch_related("tags").order_by("name")
    return paginated(request, queryset, model_to_dict, filterset_class=RegisteredModelApiFilter)


def _model_for(user, name: str, action: str = Action.VIEW) -> RegisteredModel:
    return get_model_for(user, name, action, queryset=models_with_pointers(RegisteredModel.objects.all()).select_related("team"))


@documented(methods=["GET"], summary="Read a model", responses={200: RegisteredModelSerializer}, errors=[404])
@documented(
    methods=["PATCH"],
    summary="Change a model's description, tags or team (managers; audited like the edit page)",
    request=RegisteredModelUpdateSerializer,
    responses={200: RegisteredModelSerializer},
    errors=[400, 403, 404, 415],
)
@api_view(["GET", "PATCH"])
def model_detail(request, name: str):
    if request.method == "GET":
        return Response(model_to_dict(_model_for(request.user, name)))
    model = _model_for(request.user, name, Action.MANAGE)  # before the body is read
    current = {"description": model.description, "team": model.team, "tags": sorted(model.tags.names())}
    model_update(model=model, actor=request.user, **{**current, **validated_body(RegisteredModelUpdateSerializer, request)})
    return Response(model_to_dict(_model_for(request.user, name)))
