"""A real S3 API for tests: a `moto_server` subprocess on loopback (the `moto_endpoint` fixture, one per session) and a
fresh bucket per test with settings.STORAGES["artifacts"] pointing at it (the `s3` fixture).

No mock decorators and no patched clients: django-storages and boto3 talk HTTP to moto exactly as they would to AWS.
When `moto_server` cannot start, the tests using it skip with the reason; with CI=true they fail instead.
Test modules import the fixtures they use from here (`moto_endpoint_fixture`, `s3_fixture`).
"""

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

import pytest
from django.conf import settings
from django.test import override_settings

boto3 = pytest.importorskip("boto3")
from botocore.config import Config  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REGION = "us-east-1"


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


@pytest.fixture(scope="session", name="moto_endpoint")
def moto_endpoint_fixture(tmp_path_factory):
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


def s3_client(endpoint: str, service: str = "s3", *, access_key: str = "testing", secret_key: str = "testing"):
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


def empty_and_delete_bucket(client, bucket: str) -> None:
    for upload_ in client.list_multipart_uploads(Bucket=bucket).get("Uploads", ()):
        client.abort_multipart_upload(Bucket=bucket, Key=upload_["Key"], UploadId=upload_["UploadId"])
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
            client.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])
    client.delete_bucket(Bucket=bucket)


@pytest.fixture(name="s3")
def s3_fixture(moto_endpoint):
    """A fresh bucket (3+ characters) on the moto server, with settings.STORAGES["artifacts"] pointing at it."""
    client = s3_client(moto_endpoint)
    bucket = f"artifacts-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=bucket)
    target = S3(endpoint=moto_endpoint, bucket=bucket, client=client)
    try:
        with override_settings(STORAGES=target.storages()):
            yield target
    finally:
        empty_and_delete_bucket(client, bucket)
