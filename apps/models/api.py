from django.contrib.auth.models import Group
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from .models import RegisteredModel
from .permissions import get_model_for, visible_models
from .services import model_create


class Pages(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


def model_to_dict(model: RegisteredModel) -> dict:
    return {
        "name": model.name,
        "description": model.description,
        "team": model.team.name if model.team else None,
        "tags": sorted(tag.name for tag in model.tags.all()),
        "latest_version": model.last_version_number or None,
        "production_version": getattr(model, "production_number", None),
        "created_at": model.created_at.isoformat(),
    }


@api_view(["GET", "POST"])
def models_collection(request):
    if request.method == "POST":
        data = request.data
        tags = data.get("tags") if isinstance(data, dict) else None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("name"), str)
            or not isinstance(data.get("description", ""), str)
            or not (tags is None or (isinstance(tags, list) and all(isinstance(t, str) for t in tags)))
            or not isinstance(data.get("team") or "", str)
        ):
            return Response(
                {"error": {"code": "invalid", "message": "Send a JSON object: 'name' (string), optional 'description' (string), 'tags' (list of strings), 'team'."}},
                status=400,
            )
        team = None
        if data.get("team"):
            team = request.user.groups.filter(name=data["team"]).first()
            if team is None and not Group.objects.filter(name=data["team"]).exists():
                return Response({"error": {"code": "invalid", "message": f"No team named {data['team']!r}."}}, status=400)
            if team is None:
                return Response({"error": {"code": "invalid", "message": "You can only assign a team you belong to."}}, status=400)
        model = model_create(
            name=data["name"], description=str(data.get("description") or ""), team=team,
            tags=tags or [], actor=request.user,
        )
        return Response(model_to_dict(model), status=status.HTTP_201_CREATED)
    queryset = visible_models(request.user).with_pointers().select_related("team").prefetch_related("tags")
    queryset = queryset.search(request.query_params.get("search", ""))
    paginator = Pages()
    page = paginator.paginate_queryset(queryset.order_by("name"), request)
    return paginator.get_paginated_response([model_to_dict(m) for m in page])


@api_view(["GET"])
def model_detail(request, name: str):
    model = get_model_for(request.user, name, queryset=RegisteredModel.objects.with_pointers().select_related("team"))
    return Response(model_to_dict(model))
