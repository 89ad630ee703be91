from django.contrib import admin
from django.urls import include, path

from apps.accounts.views import health
from apps.versions.urls import compare_urlpatterns

urlpatterns = [
    # The API first: Django tries patterns in order, and what pipelines poll should not walk every page's pattern first.
    path("api/v1/", include("registry_site.api_urls")),
    path("", include("apps.mlflow_api.urls")),  # MLflow's REST paths: /api/2.0/mlflow/..., /api/2.0/mlflow-artifacts/...
    path("", include("apps.models.urls")),
    path("", include("apps.approvals.urls")),
    path("models/<str:name>/versions/", include("apps.versions.urls")),
    path("", include(compare_urlpatterns)),
    path("models/<str:name>/", include("apps.validation.urls")),
    path("models/<str:name>/webhooks/", include("apps.events.urls")),
    path("models/<str:name>/aliases/", include("apps.approvals.aliases.urls")),
    path("", include("apps.audit.urls")),
    path("", include("apps.lineage.urls")),
    path("", include("apps.cards.urls")),
    path("accounts/", include("apps.accounts.urls")),
    path("notifications/", include("apps.notifications.urls")),
    path("", include("apps.comments.urls")),
    path("admin/", admin.site.urls),
    path("healthz", health, name="health"),
    path("", include("apps.signing.urls")),  # /.well-known/model-registry-keys.json (public)
]

handler400 = "apps.web.errors.bad_request"
handler403 = "apps.web.errors.permission_denied"
handler404 = "apps.web.errors.page_not_found"
handler500 = "apps.web.errors.server_error"
