"""MLflow's REST paths (`mlflow.protos.model_registry_pb2`, the artifact proxy, server-info), mounted at the site root."""

from django.urls import path

from . import api, artifacts_api

urlpatterns = [
    # What serving code asks first (`models:/name@alias`): Django tries the patterns in order.
    path("api/2.0/mlflow/registered-models/alias", api.registered_model_alias),
    path("api/2.0/mlflow/registered-models/create", api.registered_model_create_view),
    path("api/2.0/mlflow/registered-models/get", api.registered_model_get),
    path("api/2.0/mlflow/registered-models/search", api.registered_model_search),
    path("api/2.0/mlflow/registered-models/update", api.registered_model_update),
    path("api/2.0/mlflow/registered-models/set-tag", api.tag_change, {"of_version": False, "delete": False}),
    path("api/2.0/mlflow/registered-models/delete-tag", api.tag_change, {"of_version": False, "delete": True}),
    path("api/2.0/mlflow/registered-models/get-latest-versions", api.latest_versions_view),
    path("api/2.0/mlflow/model-versions/create", api.model_version_create),
    path("api/2.0/mlflow/model-versions/get", api.model_version_get),
    path("api/2.0/mlflow/model-versions/search", api.model_version_search),
    path("api/2.0/mlflow/model-versions/update", api.model_version_update),
    path("api/2.0/mlflow/model-versions/set-tag", api.tag_change, {"of_version": True, "delete": False}),
    path("api/2.0/mlflow/model-versions/delete-tag", api.tag_change, {"of_version": True, "delete": True}),
    path("api/2.0/mlflow/model-versions/get-download-uri", api.model_version_download_uri),
    path("api/2.0/mlflow/model-versions/transition-stage", api.model_version_transition_stage),
    path("api/2.0/mlflow-artifacts/artifacts", artifacts_api.artifact_listing),
    path("api/2.0/mlflow-artifacts/artifacts/<path:path>", artifacts_api.artifact_file),
    path("api/3.0/mlflow/server-info", api.server_info),
    path("api/2.0/mlflow/<path:rest>", api.not_served),
    path("api/2.0/mlflow-artifacts/<path:rest>", api.not_served),  # multipart uploads and presigned downloads are off (server-info)
    path("api/3.0/mlflow/<path:rest>", api.not_served),
]
