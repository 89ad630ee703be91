"""Artifact storage on S3, exercised against a real S3 API: moto's server mode on loopback.

No mock decorators and no patched clients: django-storages and boto3 talk HTTP to a `moto_server`
subprocess (tests/s3.py) exactly as they would to AWS. Each test gets its own bucket, so object counts are exact.
When `moto_server` cannot start, the tests skip with the reason; with CI=true they fail instead.
"""

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.management import call_command
from django.test import override_settings

from apps.versions.blobs import blob_key
from apps.versions.models import Artifact, ModelVersion
from tests.factories import sha256, upload
from tests.s3 import artifact_storages, moto_endpoint_fixture, s3_client, s3_fixture  # noqa: F401  (fixtures: a moto S3 server and a fresh bucket)

boto3 = pytest.importorskip("boto3")
from boto3.s3.transfer import TransferConfig  # noqa: E402

pytestmark = pytest.mark.django_db

MiB = 1024 * 1024


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
    iam = s3_client(s3.endpoint, "iam")
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
