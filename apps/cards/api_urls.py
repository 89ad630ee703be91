"""Included into `registry_site.api_urls` (namespace "api"): model and version cards."""

from django.contrib.auth.decorators import login_not_required
from django.urls import path

from . import api

# The API authenticates itself (token or session) and answers 401 in JSON; the login redirect is for pages.
urlpatterns = [
    path("models/<str:name>/card/", login_not_required(api.model_card), name="model-card"),
    path("models/<str:name>/versions/<int:number>/card/", login_not_required(api.version_card), name="version-card"),
    path(
        "models/<str:name>/versions/<int:number>/card/from-readme/",
        login_not_required(api.version_card_from_readme),
        name="version-card-from-readme",
    ),
]
