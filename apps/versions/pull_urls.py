"""Included into `registry_site.api_urls` (namespace "api"): whole-version manifests and archives."""

from django.contrib.auth.decorators import login_not_required
from django.urls import path

from . import pull_api

# The API authenticates itself (token or session) and answers 401 in JSON; the login redirect is for pages.
urlpatterns = [
    path("models/<str:name>/versions/<int:number>/manifest/", login_not_required(pull_api.manifest_by_number), name="version-manifest"),
    path("models/<str:name>/versions/<int:number>/archive", login_not_required(pull_api.archive_by_number), name="version-archive"),
    path("models/<str:name>/stages/<str:stage>/manifest/", login_not_required(pull_api.manifest_by_stage), name="stage-manifest"),
    path("models/<str:name>/stages/<str:stage>/archive", login_not_required(pull_api.archive_by_stage), name="stage-archive"),
    path("models/<str:name>/aliases/<str:alias>/manifest/", login_not_required(pull_api.manifest_by_alias), name="alias-manifest"),
    path("models/<str:name>/aliases/<str:alias>/archive", login_not_required(pull_api.archive_by_alias), name="alias-archive"),
]
