"""Artifact storage on S3, exercised against a real S3 API: moto's server mode on loopback.

No mock decorators and no patched clients: django-storages and boto3 talk HTTP to a `moto_server`
subprocess exactly as they would to AWS. Each test gets its own bucket, so object counts are exact.
When `moto_server` cannot start, the tests skip with the reason; with CI=true they fail instead.
"""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.management import call_command
from django.conf import settings
from django.test import override_settings

from apps.versions.blobs import blob_key
from apps.versions.models import Artifact, ModelVersion
from tests.factories import sha256, upload

boto3 = pytest.importorskip("boto3")
from boto3.s3.transfer import TransferConfig  # noqa: E402
from botocore.config import Config  # noqa: E402

pytestmark = pytest.mark.django_db

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REGION = "us-east-1"
MiB = 1024 * 1024


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"CI=true but moto_server is unavailable: {reason}", pytrace=False)
    pytest.skip(f"moto_server is unavailable, S3 storage tests skipped: {reason}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _log_tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-1500:]
    except OSError:
        return ""


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory):
    """A `moto_server` subprocess on a free loopback port; yields its endpoint URL and stops it at the end."""
    executable = Path(sys.executable).with_name("moto_server")
    if not executable.exists():
        found = shutil.which("moto_server")
        if found is None:
            _unavailable("no moto_server executable next to the interpreter or on PATH (pip install 'moto[server]')")
        executable = Path(found)
    workdir = tmp_path_factory.mktemp("moto")
    with pytest.MonkeyPatch.context() as env:
        # Fixed fake credentials, and nothing from the developer's ~/.aws leaking in (profiles, regions, endpoints).
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(workdir / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "no-aws-credentials"),
        }.items():
            env.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            env.delenv(name, raising=False)

        process, endpoint, log_path, failure = None, None, None, "it did not start"
        for attempt in range(3):  # the port may be taken between probing and binding; try another
            port = _free_port()
            endpoint = f"http://127.0.0.1:{port}"
            log_path = workdir / f"moto_server-{attempt}.log"
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    [str(executable), "-H", "127.0.0.1", "-p", str(port)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir,
                )
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and process.poll() is None and not _answers(endpoint + "/"):
                time.sleep(0.1)
            if process.poll() is None and _answers(endpoint + "/"):
                break
            failure = (
                f"exited with code {process.returncode}" if process.poll() is not None else "did not answer HTTP within 30 s"
            ) + f" (command: {executable} -H 127.0.0.1 -p {port}); log tail:\n{_log_tail(log_path)}"
            process.kill()
            process.wait(timeout=10)
            process = None
        if process is None:
            _unavailable(failure)
        try:
            yield endpoint
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _client(endpoint: str, service: str = "s3", *, access_key: str = "testing", secret_key: str = "testing"):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def artifact_storages(*, endpoint: str, bucket: str, **options) -> dict:
    """settings.STORAGES with "artifacts" on S3 (the production shape from settings/base.py), plus `options`."""
    return {
        "default": settings.STORAGES["default"],
        "staticfiles": settings.STORAGES["staticfiles"],
        "artifacts": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": endpoint,
                "access_key": "testing",
                "secret_key": "testing",
                "region_name": REGION,
                "addressing_style": "path",
                "file_overwrite": True,
                "default_acl": None,
                "querystring_auth": True,
                "querystring_expire": 300,
                **options,
            },
        },
    }


@dataclass
class S3:
    endpoint: str
    bucket: str
    client: object

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))

    def body(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def storages(self, **options) -> dict:
        return artifact_storages(endpoint=self.endpoint, bucket=self.bucket, **options)

    def set_auth_after(self, count: float) -> float:
        """moto's /moto-api/reset-auth: enforce IAM on every S3 call after `count` more (inf: never). Returns the previous value."""
        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth", data=str(count).encode(), method="POST", headers={"Content-Type": "text/plain"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return float(json.load(response)["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"])


def _empty_and_delete(client, bucket: str) -> None:
    for upload_ in client.list_multipart_uploads(Bucket=bucket).get("Uploads", ()):
        client.abort_multipart_upload(Bucket=bucket, Key=upload_["Key"], UploadId=upload_["UploadId"])
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
            client.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])
    client.delete_bucket(Bucket=bucket)


@pytest.fixture
def s3(moto_endpoint):
    """A fresh bucket (3+ characters) on the moto server, with settings.STORAGES["artifacts"] pointing at it."""
    client = _client(moto_endpoint)
    bucket = f"artifacts-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=bucket)
    target = S3(endpoint=moto_endpoint, bucket=bucket, client=client)
    try:
        with override_settings(STORAGES=target.storages()):
            yield target
    finally:
        _empty_and_delete(client, bucket)


def register(api, model, files: dict[str, bytes]):
    """Register one version through the API exactly as a pipeline does (multipart: files + metadata JSON)."""
    return api.post(
        f"/api/v1/models/{model.name}/versions/",
        {
            "files": [upload(path.rsplit("/", 1)[-1], data) for path, data in files.items()],
            "metadata": json.dumps({"artifacts": [{"path": path, "sha256": sha256(data)} for path, data in files.items()]}),
        },
        format="multipart",
    )


def fetch_through_redirect(api, model, number: int, path: str):
    """GET the artifact from the API, then follow the presigned URL with urllib (a plain HTTP client)."""
    response = api.get(f"/api/v1/models/{model.name}/versions/{number}/artifacts/{path}")
    assert response.status_code == 302, response.content
    with urllib.request.urlopen(response["Location"], timeout=60) as fetched:
        return response, fetched.read(), fetched.headers


def test_registering_through_the_api_stores_the_blob_under_its_digest(api_for, owner, model, s3):
    data = os.urandom(64 * 1024)
    digest = sha256(data)
    response = register(api_for(owner), model, {"weights/model.bin": data})
    assert response.status_code == 201, response.content

    key = f"sha256/{digest[:2]}/{digest[2:4]}/{digest}"
    head = s3.client.head_object(Bucket=s3.bucket, Key=key)
    assert head["ContentLength"] == len(data)
    assert hashlib.sha256(s3.body(key)).hexdigest() == digest
    assert s3.keys() == [key], "only the content-addressed blob is written, never a copy under the user's path"
    artifact = Artifact.objects.get(version__model=model, version__number=1)
    assert (artifact.path, artifact.sha256, artifact.size) == ("weights/model.bin", digest, len(data))


def test_download_redirects_to_a_presigned_url_that_serves_the_bytes_as_an_attachment(api_for, owner, model, s3):
    api = api_for(owner)
    data = os.urandom(200 * 1024)
    digest = sha256(data)
    assert register(api, model, {"configs/config.json": data}).status_code == 201

    response, body, headers = fetch_through_redirect(api, model, 1, "configs/config.json")
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}" == s3.endpoint
    assert location.path == f"/{s3.bucket}/{blob_key(digest)}"
    query = parse_qs(location.query)
    # botocore presigns with SigV4 (X-Amz-*) or, for us-east-1 and custom endpoints without a signature_version, legacy SigV2.
    if "X-Amz-Signature" in query:
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Expires"] == ["300"]
    else:
        assert query["AWSAccessKeyId"] == ["testing"] and query["Signature"], f"the URL must be presigned: {response['Location']}"
        assert abs(int(query["Expires"][0]) - (time.time() + 300)) < 60, "the URL must expire after querystring_expire"
    assert query["response-content-disposition"] == ['attachment; filename="config.json"']
    assert response["X-Checksum-SHA256"] == digest

    assert hashlib.sha256(body).hexdigest() == digest
    assert headers["Content-Disposition"] == 'attachment; filename="config.json"'
    assert headers["Content-Type"] == "application/json"


def test_the_same_bytes_in_two_versions_are_stored_once(api_for, owner, model, s3):
    api = api_for(owner)
    data = os.urandom(32 * 1024)
    assert register(api, model, {"model.bin": data}).status_code == 201
    assert register(api, model, {"renamed/weights.bin": data, "extra.txt": b"only in v2"}).status_code == 201

    assert s3.keys(prefix="sha256/") == sorted([blob_key(sha256(data)), blob_key(sha256(b"only in v2"))])
    assert Artifact.objects.filter(sha256=sha256(data)).count() == 2
    for number, path in ((1, "model.bin"), (2, "renamed/weights.bin")):
        _, body, _ = fetch_through_redirect(api, model, number, path)
        assert sha256(body) == sha256(data)


def test_a_file_above_the_multipart_threshold_goes_up_in_parts_and_round_trips(api_for, owner, model, s3):
    part = 5 * MiB  # S3's smallest part size; boto3 raises smaller chunk sizes to it anyway
    data = os.urandom(2 * part + 2 * MiB + 12345)  # three parts: 5 MiB, 5 MiB, the rest
    digest = sha256(data)
    api = api_for(owner)
    with override_settings(STORAGES=s3.storages(transfer_config=TransferConfig(multipart_threshold=part, multipart_chunksize=part))):
        assert register(api, model, {"big/model.safetensors": data}).status_code == 201
        _, body, headers = fetch_through_redirect(api, model, 1, "big/model.safetensors")

    head = s3.client.head_object(Bucket=s3.bucket, Key=blob_key(digest))
    # S3 (and moto) give a multipart object the ETag "<md5 of the parts' md5s>-<number of parts>".
    assert head["ETag"].strip('"').endswith("-3"), f"expected a 3-part multipart upload, got ETag {head['ETag']}"
    assert head["ContentLength"] == len(data)
    assert len(body) == len(data) and hashlib.sha256(body).hexdigest() == digest
    assert Artifact.objects.get(version__model=model).size == len(data)


def test_a_storage_write_failing_midway_leaves_no_version_and_the_cleanup_removes_the_orphan(api_for, owner, model, s3):
    """The second file's PutObject is refused by IAM (a real AccessDenied from the S3 API), after the first file was stored."""
    first, second = os.urandom(8 * 1024), os.urandom(8 * 1024)
    s3.client.put_bucket_versioning(Bucket=s3.bucket, VersioningConfiguration={"Status": "Enabled"})  # keeps a trace of deleted blobs
    iam = _client(s3.endpoint, "iam")
    user = f"registry-writer-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    iam.put_user_policy(
        UserName=user,
        PolicyName="artifacts",
        PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{s3.bucket}", f"arn:aws:s3:::{s3.bucket}/*"]},
                {"Effect": "Deny", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{s3.bucket}/{blob_key(sha256(second))}"},
            ],
        }),
    )
    api = api_for(owner)
    api.raise_request_exception = False  # answer as a server would: 500, not an exception in the test
    previous = s3.set_auth_after(0)
    try:
        with override_settings(STORAGES=s3.storages(access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])):
            response = register(api, model, {"a/first.bin": first, "b/second.bin": second})
    finally:
        s3.set_auth_after(previous)

    assert response.status_code == 503 and response.json()["error"]["code"] == "storage_unavailable"
    assert not ModelVersion.objects.filter(model=model).exists()
    assert not Artifact.objects.filter(sha256__in=[sha256(first), sha256(second)]).exists()
    model.refresh_from_db()
    assert model.last_version_number == 0
    # The first blob was written before the failure (midway); the cleanup command removes it from the bucket.
    assert s3.keys() == [blob_key(sha256(first))]
    with override_settings(STORAGES=s3.storages()):
        call_command("gc_artifact_blobs", "--grace-minutes", "0")
    assert s3.keys() == []


def test_a_registration_against_a_missing_bucket_fails_without_rows(api_for, owner, model, s3):
    api = api_for(owner)
    api.raise_request_exception = False
    with override_settings(STORAGES=artifact_storages(endpoint=s3.endpoint, bucket=f"missing-{uuid.uuid4().hex[:12]}")):
        response = register(api, model, {"model.bin": os.urandom(1024)})
    assert response.status_code == 503 and response.json()["error"]["code"] == "storage_unavailable"
    assert not ModelVersion.objects.filter(model=model).exists()
    assert not Artifact.objects.filter(version__model=model).exists()
    assert s3.keys() == []
