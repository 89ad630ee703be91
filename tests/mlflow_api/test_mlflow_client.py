"""The real MLflow client (mlflow-skinny, pinned in the dev extras) against a live registry: what training and
serving code runs with MLFLOW_TRACKING_URI=<registry> and MLFLOW_TRACKING_TOKEN=<registry token>."""

import filecmp
import os

import pytest

from apps.accounts.models import TokenScope
from apps.accounts.services import api_token_create
from apps.approvals.models import RequestStatus, TransitionRequest
from apps.approvals.services import alias_policy_update, transition_request_approve
from apps.mlflow_api.models import StagedArtifact
from apps.models.models import RegisteredModel
from apps.models.permissions import Action
from apps.models.services import model_permission_grant
from apps.validation.services import validation_run
from apps.versions.models import ModelVersion
from apps.versions.paths import blob_key
from tests.helpers import safetensors
from tests.s3 import moto_endpoint_fixture, s3_fixture  # noqa: F401  (fixtures: a moto S3 server and a fresh bucket)

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException, RestException  # noqa: E402
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository  # noqa: E402

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.filterwarnings("ignore:.*is deprecated since 2.9.0:FutureWarning")]


@pytest.fixture
def client_for(live_server, monkeypatch):
    """An MlflowClient acting with a fresh registry token of `user`, as MLFLOW_TRACKING_TOKEN sets it."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", live_server.url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

    def as_user(user, scope=TokenScope.FULL) -> MlflowClient:
        _, secret = api_token_create(user=user, name="mlflow", scope=scope)
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", secret)
        return MlflowClient(tracking_uri=live_server.url, registry_uri=live_server.url)

    return as_user


@pytest.fixture
def exported(tmp_path):
    """A model folder as mlflow.<flavor>.save_model writes one."""
    folder = tmp_path / "model"
    (folder / "data").mkdir(parents=True)
    (folder / "MLmodel").write_text("artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.sklearn\n")
    (folder / "requirements.txt").write_text("scikit-learn==1.5.2\n")
    (folder / "data" / "model.safetensors").write_bytes(safetensors({"weight": ("F32", [16, 16])}))
    return folder


def _upload(folder, uri: str) -> None:
    """What log_artifacts does through the tracking server's artifact proxy."""
    get_artifact_repository(uri).log_artifacts(str(folder))


def _same_files(left, right) -> bool:
    comparison = filecmp.dircmp(left, right)
    return not comparison.left_only and not comparison.diff_files and all(
        filecmp.cmp(os.path.join(left, name), os.path.join(right, name), shallow=False) for name in comparison.common_files
    ) and all(_same_files(os.path.join(left, sub), os.path.join(right, sub)) for sub in comparison.common_dirs)


def test_a_training_pipeline_registers_searches_tags_and_downloads_with_the_mlflow_client(client_for, owner, exported, tmp_path):
    client = client_for(owner)
    created = client.create_registered_model("churn", tags={"team": "growth"}, description="Churn model")
    assert (created.name, created.description, created.tags) == ("churn", "Churn model", {"team": "growth"})
    with pytest.raises(RestException) as exists:
        client.create_registered_model("churn")
    assert exists.value.error_code == "RESOURCE_ALREADY_EXISTS"

    _upload(exported, "mlflow-artifacts:/uploads/run-1/model")
    listed = mlflow.artifacts.list_artifacts(artifact_uri="mlflow-artifacts:/uploads/run-1/model")
    assert sorted((f.path, f.is_dir) for f in listed) == [("model/MLmodel", False), ("model/data", True), ("model/requirements.txt", False)]

    version = client.create_model_version(
        "churn", "mlflow-artifacts:/uploads/run-1/model", run_id="run-1", tags={"framework": "sklearn"}, description="first"
    )
    assert (version.version, version.status, version.current_stage, version.run_id) == ("1", "READY", "None", "run-1")
    assert version.tags == {"framework": "sklearn"} and version.source == "mlflow-artifacts:/uploads/run-1/model"
    stored = ModelVersion.objects.get(model__name="churn", number=1)
    assert sorted(stored.artifacts.values_list("path", flat=True)) == ["MLmodel", "data/model.safetensors", "requirements.txt"]
    assert not StagedArtifact.objects.exists()  # the uploads became the version's files
    assert stored.validation_jobs.count() == 1  # validated like any registration

    # A second version from the first one's download URI: the same blobs, nothing uploaded again.
    uri = client.get_model_version_download_uri("churn", "1")
    assert uri == "mlflow-artifacts:/models/churn/versions/1"
    second = client.create_model_version("churn", uri, run_id="run-2")
    assert second.version == "2"
    assert sorted(ModelVersion.objects.get(model__name="churn", number=2).artifacts.values_list("sha256", flat=True)) == sorted(
        stored.artifacts.values_list("sha256", flat=True)
    )

    got = client.get_model_version("churn", "1")
    assert got.description == "first" and got.creation_timestamp > 1_700_000_000_000 and got.user_id == "owner"
    client.update_model_version("churn", "1", description="first, retrained")
    client.update_registered_model("churn", description="Churn model v2")
    client.set_registered_model_tag("churn", "owner", "growth-team")
    client.delete_registered_model_tag("churn", "team")
    client.set_model_version_tag("churn", "2", "candidate", "yes")
    client.delete_model_version_tag("churn", "1", "framework")
    model = client.get_registered_model("churn")
    assert model.description == "Churn model v2" and model.tags == {"owner": "growth-team"}
    assert [v.version for v in model.latest_versions] == ["2"]
    assert client.get_model_version("churn", "1").tags == {} and client.get_model_version("churn", "1").description == "first, retrained"

    def found(filter_string, **kwargs):
        return sorted(v.version for v in client.search_model_versions(filter_string, **kwargs))

    assert found("name='churn'") == ["1", "2"]
    assert found("name LIKE 'chu%'") == ["1", "2"] and found("name LIKE 'CHU%'") == [] and found("name ILIKE 'CHU%'") == ["1", "2"]
    assert found("run_id='run-2'") == ["2"]
    assert found("tags.`candidate`='yes'") == ["2"] and found("tags.candidate = 'no'") == []
    assert found("name='churn' AND version_number>1") == ["2"]
    assert found("source_path='mlflow-artifacts:/uploads/run-1/model'") == ["1"]
    page = client.search_model_versions("name='churn'", max_results=1, order_by=["version_number ASC"])
    assert [v.version for v in page] == ["1"] and page.token
    rest = client.search_model_versions("name='churn'", max_results=1, order_by=["version_number ASC"], page_token=page.token)
    assert [v.version for v in rest] == ["2"] and not rest.token
    with pytest.raises(RestException) as refused:
        client.search_model_versions("name='churn' OR run_id='x'")
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE" and "Expected AND" in refused.value.message
    assert [m.name for m in client.search_registered_models("name LIKE 'ch%'")] == ["churn"]
    assert [m.name for m in client.search_registered_models("tags.owner = 'growth-team'")] == ["churn"]

    downloaded = mlflow.artifacts.download_artifacts("models:/churn/1", dst_path=str(tmp_path / "out"))
    assert _same_files(exported, downloaded)
    copied = client.copy_model_version("models:/churn/1", "churn-copy")  # source models:/churn/1, files shared
    assert (copied.name, copied.version, copied.source) == ("churn-copy", "1", "models:/churn/1")

    client.set_registered_model_alias("churn", "challenger", "2")  # a free alias: no policy, moves at once
    assert client.get_model_version_by_alias("churn", "challenger").version == "2"
    assert client.get_model_version("churn", "2").aliases == ["challenger"]
    assert client.get_registered_model("churn").aliases == {"challenger": "2"}
    client.set_registered_model_alias("churn", "challenger", "1")
    assert client.get_model_version_by_alias("churn", "challenger").version == "1"
    assert client.get_model_version("churn", "2").aliases == []
    client.delete_registered_model_alias("churn", "challenger")
    with pytest.raises(RestException) as deleted:
        client.get_model_version_by_alias("churn", "challenger")
    assert deleted.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(RestException) as reserved:
        client.set_registered_model_alias("churn", "staging", "1")
    assert reserved.value.error_code == "INVALID_PARAMETER_VALUE"

    with pytest.raises(RestException) as elsewhere:
        client.create_model_version("churn", "s3://bucket/model")
    assert elsewhere.value.error_code == "INVALID_PARAMETER_VALUE" and "never fetches" in elsewhere.value.message
    assert ModelVersion.objects.filter(model__name="churn").count() == 2


def test_governed_moves_wait_for_approval_and_the_client_sees_them_once_approved(client_for, owner, reviewer, exported, tmp_path):
    client = client_for(owner)
    _upload(exported, "mlflow-artifacts:/uploads/run-1/model")
    assert mlflow.register_model("mlflow-artifacts:/uploads/run-1/model", "churn").version == "1"  # creates the model too
    model = RegisteredModel.objects.get(name="churn")
    for action in (Action.VIEW, Action.APPROVE_TRANSITION):
        model_permission_grant(model=model, actor=owner, action=action, user=reviewer)
    alias_policy_update(model=model, alias="champion", actor=owner, required_approvals=1)
    validation_run(job_id=ModelVersion.objects.get(model__name="churn").validation_jobs.get().pk)

    assert client.transition_model_version_stage("churn", "1", "Staging").current_stage == "Staging"
    with pytest.raises(RestException) as refused:
        client.transition_model_version_stage("churn", "1", "Production")
    pending = TransitionRequest.objects.get(status=RequestStatus.PENDING)
    assert refused.value.error_code == "PERMISSION_DENIED" and f"#{pending.pk}" in refused.value.message
    assert client.get_model_version("churn", "1").current_stage == "Staging"
    assert client.get_latest_versions("churn", stages=["Production"]) == []
    with pytest.raises(RestException) as again:
        client.transition_model_version_stage("churn", "1", "Production")  # names the same request, opens no other
    assert f"#{pending.pk}" in again.value.message and TransitionRequest.objects.filter(status=RequestStatus.PENDING).count() == 1

    with pytest.raises(RestException) as governed:
        client.set_registered_model_alias("churn", "champion", "1")
    alias_request = TransitionRequest.objects.get(status=RequestStatus.PENDING, alias="champion")
    assert governed.value.error_code == "PERMISSION_DENIED" and f"#{alias_request.pk}" in governed.value.message
    with pytest.raises(RestException) as not_yet:
        client.get_model_version_by_alias("churn", "champion")
    assert not_yet.value.error_code == "RESOURCE_DOES_NOT_EXIST"

    transition_request_approve(transition_request=pending, actor=reviewer, comment="ok")
    transition_request_approve(transition_request=alias_request, actor=reviewer, comment="ok")
    assert [v.version for v in client.get_latest_versions("churn", stages=["Production"])] == ["1"]
    assert client.get_model_version_by_alias("churn", "champion").aliases == ["champion", "production"]
    by_stage = mlflow.artifacts.download_artifacts("models:/churn/Production", dst_path=str(tmp_path / "prod"))
    by_alias = mlflow.artifacts.download_artifacts("models:/churn@champion", dst_path=str(tmp_path / "champion"))
    assert _same_files(exported, by_stage) and _same_files(exported, by_alias)
    with pytest.raises(RestException) as managers_only:
        client_for(reviewer).delete_registered_model_alias("churn", "champion")  # governed: only managers delete it
    assert managers_only.value.error_code == "PERMISSION_DENIED"


def test_an_outsider_finds_nothing_and_lists_nothing(client_for, owner, outsider, exported, live_server, monkeypatch):
    client = client_for(owner)
    client.create_registered_model("churn")
    _upload(exported, "mlflow-artifacts:/uploads/run-1/model")
    client.create_model_version("churn", "mlflow-artifacts:/uploads/run-1/model")
    client.set_registered_model_alias("churn", "champion", "1")
    _upload(exported, "mlflow-artifacts:/uploads/run-2/model")  # the owner's, not yet registered

    stranger = client_for(outsider)
    calls = [
        lambda: stranger.get_registered_model("churn"),
        lambda: stranger.get_model_version("churn", "1"),
        lambda: stranger.get_model_version_download_uri("churn", "1"),
        lambda: stranger.get_latest_versions("churn"),
        lambda: stranger.update_registered_model("churn", description="mine"),
        lambda: stranger.set_registered_model_tag("churn", "k", "v"),
        lambda: stranger.delete_registered_model_tag("churn", "k"),
        lambda: stranger.set_model_version_tag("churn", "1", "k", "v"),
        lambda: stranger.delete_model_version_tag("churn", "1", "k"),
        lambda: stranger.update_model_version("churn", "1", description="mine"),
        lambda: stranger.transition_model_version_stage("churn", "1", "Staging"),
        lambda: stranger.get_model_version_by_alias("churn", "champion"),
        lambda: stranger.set_registered_model_alias("churn", "champion", "1"),
        lambda: stranger.delete_registered_model_alias("churn", "champion"),
        lambda: stranger.create_model_version("churn", "mlflow-artifacts:/uploads/run-2/model"),
    ]
    for call in calls:
        with pytest.raises(RestException) as hidden:
            call()
        assert hidden.value.error_code == "RESOURCE_DOES_NOT_EXIST", hidden.value.message
    assert list(stranger.search_registered_models()) == [] and list(stranger.search_model_versions("name='churn'")) == []
    assert mlflow.artifacts.list_artifacts(artifact_uri="mlflow-artifacts:/uploads/run-2/model") == []  # not theirs
    for uri in ("models:/churn/1", "models:/churn@champion"):
        with pytest.raises(MlflowException):
            mlflow.artifacts.download_artifacts(uri)
    stranger.create_registered_model("theirs")
    with pytest.raises(RestException) as not_theirs:
        stranger.create_model_version("theirs", "mlflow-artifacts:/uploads/run-2/model")  # the owner's upload is invisible
    assert not_theirs.value.error_code == "RESOURCE_DOES_NOT_EXIST"

    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    with pytest.raises(RestException) as anonymous:
        MlflowClient(tracking_uri=live_server.url, registry_uri=live_server.url).search_registered_models()
    assert anonymous.value.error_code == "UNAUTHENTICATED"


def test_on_s3_uploads_go_to_the_bucket_and_downloads_follow_presigned_urls(client_for, owner, exported, tmp_path, s3):
    client = client_for(owner)
    _upload(exported, "mlflow-artifacts:/uploads/run-1/model")
    assert mlflow.register_model("mlflow-artifacts:/uploads/run-1/model", "churn").version == "1"
    stored = ModelVersion.objects.get(model__name="churn").artifacts.all()
    assert s3.keys("sha256/") == sorted(blob_key(artifact.sha256) for artifact in stored)
    downloaded = mlflow.artifacts.download_artifacts("models:/churn/1", dst_path=str(tmp_path / "out"))  # redirects to S3
    assert _same_files(exported, downloaded) and client.get_model_version("churn", "1").status == "READY"
