from django.contrib.auth.decorators import login_not_required
from django.urls import include, path, re_path
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from apps.web.errors import json_not_found
from apps.approvals import api as approval_api
from apps.audit import api as audit_api
from apps.models import api as model_api
from apps.versions import api as version_api

app_name = "api"


def _open(view):
    # The API authenticates itself (token or session) and answers 401 in JSON; the login redirect is for pages.
    return login_not_required(view)


urlpatterns = [
    # What deployment pipelines poll first: Django tries the patterns in order.
    path("models/<str:name>/stages/<str:stage>/", _open(version_api.version_by_stage), name="stage"),
    path("", include("apps.approvals.aliases.api_urls")),  # aliases: lookup (ETag), set/move/delete, policy, history, rollback
    path("models/", _open(model_api.models_collection), name="models"),
    path("models/<str:name>/", _open(model_api.model_detail), name="model"),
    path("models/<str:name>/versions/", _open(version_api.versions_collection), name="versions"),
    path("models/<str:name>/versions/check/", _open(version_api.version_metadata_check), name="version-metadata-check"),
    path("models/<str:name>/uploads/", include("apps.versions.upload_urls")),  # upload sessions (each view is login_not_required itself)
    path("models/<str:name>/versions/<int:number>/", _open(version_api.version_detail), name="version"),
    path("models/<str:name>/versions/<int:number>/transitions/", _open(approval_api.transition_request_collection), name="version-transitions"),
    path("models/<str:name>/versions/<int:number>/artifacts/<path:path>", _open(version_api.artifact_download), name="artifact-download"),
    path("models/<str:name>/rollback/", _open(approval_api.rollback), name="rollback"),
    path("models/<str:name>/history/production/", _open(approval_api.production_pointer_history), name="production-history"),
    path("models/<str:name>/deployments/<str:environment>/", _open(version_api.deployment_report_view), name="deployment"),
    path("transition-requests/<int:pk>/", _open(approval_api.transition_request_detail), name="transition-request"),
    path("transition-requests/<int:pk>/approve/", _open(approval_api.approve), name="transition-request-approve"),
    path("transition-requests/<int:pk>/reject/", _open(approval_api.reject), name="transition-request-reject"),
    path("transition-requests/<int:pk>/withdraw/", _open(approval_api.withdraw), name="transition-request-withdraw"),
    path("transition-requests/<int:pk>/override-quality/", _open(approval_api.override_quality), name="transition-request-override-quality"),
    path("audit/", _open(audit_api.audit_entries), name="audit"),
    path("", include("apps.lineage.api_urls")),  # datasets, impact, version lineage (each view is login_not_required itself)
    path("", include("apps.cards.api_urls")),  # model and version cards (each view is login_not_required itself)
    path("", include("apps.versions.pull_urls")),  # whole-version manifests and archives (each view is login_not_required itself)
    path("", include("apps.signing.api_urls")),  # signed manifests (each view is login_not_required itself)
    # The OpenAPI 3 schema (JSON; YAML with ?format=yaml) and its docs pages, for logged-in users and token holders.
    path("schema/", _open(SpectacularAPIView.as_view()), name="schema"),
    path("docs/", _open(SpectacularSwaggerView.as_view(url_name="api:schema")), name="docs"),
    path("docs/redoc/", _open(SpectacularRedocView.as_view(url_name="api:schema")), name="redoc"),
    re_path(r"^.*$", _open(extend_schema(exclude=True)(json_not_found))),
]
