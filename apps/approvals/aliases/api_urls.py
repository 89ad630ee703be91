"""The aliases API, mounted under /api/v1/ by registry_site/api_urls.py."""

from django.contrib.auth.decorators import login_not_required
from django.urls import path

from . import api

urlpatterns = [
    path("models/<str:name>/aliases/", login_not_required(api.alias_collection), name="aliases"),
    path("models/<str:name>/aliases/<str:alias>/", login_not_required(api.alias_detail), name="alias"),
    path("models/<str:name>/aliases/<str:alias>/policy/", login_not_required(api.alias_policy_detail), name="alias-policy"),
    path("models/<str:name>/aliases/<str:alias>/history/", login_not_required(api.alias_history_view), name="alias-history"),
    path("models/<str:name>/aliases/<str:alias>/rollback/", login_not_required(api.alias_rollback_view), name="alias-rollback"),
]
