from django.contrib.auth.decorators import login_not_required
from django.urls import path, re_path

from apps.accounts.api_errors import json_not_found
from apps.models import api as model_api
from apps.versions import api as version_api

app_name = "api"


def _open(view):
    # The API authenticates itself (token or session) and answers 401 in JSON; the login redirect is for pages.
    return login_not_required(view)


urlpatterns = [
    path("models/", _open(model_api.models_collection), name="models"),
    path("models/<str:name>/", _open(model_api.model_detail), name="model"),
    path("models/<str:name>/versions/", _open(version_api.versions_collection), name="versions"),
    path("models/<str:name>/versions/<int:number>/", _open(version_api.version_detail), name="version"),
    path("models/<str:name>/versions/<int:number>/transitions/", _open(version_api.version_transition_create), name="version-transitions"),
    path("models/<str:name>/versions/<int:number>/artifacts/<path:path>", _open(version_api.artifact_download), name="artifact-download"),
    path("models/<str:name>/stages/<str:stage>/", _open(version_api.version_by_stage), name="stage"),
    re_path(r"^.*$", _open(json_not_found)),
]
