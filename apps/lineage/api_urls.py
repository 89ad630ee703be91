"""Included into `registry_site.api_urls` (namespace "api") without a namespace of its own."""

from django.contrib.auth.decorators import login_not_required
from django.urls import path

from . import api

# The API authenticates itself (token or session) and answers 401 in JSON; the login redirect is for pages.
urlpatterns = [
    path("datasets/", login_not_required(api.datasets_collection), name="datasets"),
    path("datasets/<int:pk>/", login_not_required(api.dataset_detail), name="dataset"),
    path("datasets/<int:pk>/impact/", login_not_required(api.dataset_impact), name="dataset-impact"),
    path("models/<str:name>/versions/<int:number>/lineage/", login_not_required(api.version_lineage), name="version-lineage"),
    path("models/<str:name>/versions/<int:number>/impact/", login_not_required(api.version_impact), name="version-impact"),
]
