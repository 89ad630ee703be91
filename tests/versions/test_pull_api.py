"""Whole-version pulls through the API: the manifest, the streamed archive (zip and tar, local disk and S3), and
single-artifact downloads with HEAD, ETag, If-None-Match and Range."""

import io
import json
import tarfile
import urllib.request
import zipfile

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.versions.blobs import blob_key
from apps.versions.manifest import manifest_json
from apps.approvals.services import alias_set, transition_request_create
from apps.versions.lifecycle import Stage
from tests.factories import register_version, sha256, streamed
from tests.s3 import moto_endpoint_fixture, s3_fixture  # noqa: F401  (fixtures: a moto S3 server and a fresh bucket)

pytestmark = pytest.mark.django_db

FILES = {
    "config.json": b'{"hidden_size": 384}',
    "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
    "model.safetensors": bytes(range(256)) * 4099,  # a few chunks' worth would be slow; this crosses no boundary but is not tiny
    "empty.txt": b"",
}


@pytest.fixture
def minilm(model, owner):
    return register_version(model, owner, files=FILES)


def _expected_manifest(version) -> dict:
    files = sorted(({"path": p, "size": len(d), "sha256": sha256(d)} for p, d in FILES.items()), key=lambda f: f["path"])
    return {"model": version.model.name, "version": version.number, "version_id": str(version.pk), "files": files}


def test_the_manifest_lists_every_file_sorted_by_path_with_size_and_sha256(api_for, owner, minilm):
    response = api_for(owner).get(f"/api/v1/models/{minilm.model.name}/versions/1/manifest/")
    assert response.status_code == 200
    assert response.json() == _expected_manifest(minilm)


def test_the_manifest_and_archive_by_stage_are_the_staged_versions(api_for, owner, model, minilm):
    register_version(model, owner, files={"other.bin": b"v2"})
    transition_request_create(version=minilm, to_stage=Stage.STAGING, actor=owner, justification="try it")  # staging needs no approval
    api = api_for(owner)
    assert api.get(f"/api/v1/models/{model.name}/stages/staging/manifest/").json()["version"] == 1
    archive = zipfile.ZipFile(io.BytesIO(streamed(api.get(f"/api/v1/models/{model.name}/stages/staging/archive"))))
    assert sorted(archive.namelist()) == sorted([*FILES, "MANIFEST.json"])
    assert api.get(f"/api/v1/models/{model.name}/stages/production/manifest/").status_code == 404
    assert api.get(f"/api/v1/models/{model.name}/stages/nonsense/archive").status_code == 404


def test_the_manifest_and_archive_by_alias_follow_the_alias(api_for, owner, model, minilm):
    register_version(model, owner, files={"other.bin": b"v2"})
    alias_set(model=model, alias="champion", version=minilm, actor=owner)
    api = api_for(owner)
    assert api.get(f"/api/v1/models/{model.name}/aliases/champion/manifest/").json() == _expected_manifest(minilm)
    body = streamed(api.get(f"/api/v1/models/{model.name}/aliases/champion/archive?format=tar"))
    _check_archive("tar", body, minilm)
    missing = api.get(f"/api/v1/models/{model.name}/aliases/challenger/manifest/")
    assert missing.status_code == 404 and "challenger" in missing.json()["error"]["message"]


def test_a_deployer_polling_an_alias_gets_304_until_it_points_at_other_files(api_for, owner, model, minilm):
    v2 = register_version(model, owner, files={**FILES, "config.json": b'{"hidden_size": 768}'})
    alias_set(model=model, alias="champion", version=minilm, actor=owner)
    api = api_for(owner)
    for suffix in ("manifest/", "archive", "archive?format=tar"):
        first = api.get(f"/api/v1/models/sentiment/aliases/champion/{suffix}")
        assert first.status_code == 200 and first["ETag"].startswith('W/"')
        assert api.get(f"/api/v1/models/sentiment/aliases/champion/{suffix}", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    zip_tag = api.get("/api/v1/models/sentiment/aliases/champion/archive")["ETag"]
    assert zip_tag != api.get("/api/v1/models/sentiment/aliases/champion/archive?format=tar")["ETag"]
    alias_set(model=model, alias="champion", version=v2, actor=owner)
    assert api.get("/api/v1/models/sentiment/aliases/champion/archive", HTTP_IF_NONE_MATCH=zip_tag).status_code == 200


def test_an_outsider_gets_404_for_the_manifest_and_the_archive(api_for, outsider, minilm):
    api = api_for(outsider)
    for suffix in ("versions/1/manifest/", "versions/1/archive", "stages/draft/archive", "versions/1/archive?format=tar", "aliases/production/archive"):
        response = api.get(f"/api/v1/models/{minilm.model.name}/{suffix}")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def _check_archive(kind: str, body: bytes, version) -> None:
    if kind == "zip":
        archive = zipfile.ZipFile(io.BytesIO(body))
        assert archive.testzip() is None
        contents = {name: archive.read(name) for name in archive.namelist()}
    else:
        archive = tarfile.open(fileobj=io.BytesIO(body))
        contents = {member.name: archive.extractfile(member).read() for member in archive.getmembers()}
    assert contents.pop("MANIFEST.json") == manifest_json(_expected_manifest(version))
    assert contents == FILES


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_the_archive_holds_every_file_under_its_path_and_the_manifest(api_for, owner, minilm, kind):
    response = api_for(owner).get(f"/api/v1/models/{minilm.model.name}/versions/1/archive" + ("?format=tar" if kind == "tar" else ""))
    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"] == f'attachment; filename="sentiment-1.{kind}"'
    body = streamed(response)
    assert int(response["Content-Length"]) == len(body)
    _check_archive(kind, body, minilm)
    manifest = api_for(owner).get(f"/api/v1/models/{minilm.model.name}/versions/1/manifest/").content
    assert json.loads(manifest) == json.loads(manifest_json(_expected_manifest(minilm)))


def test_an_unknown_archive_format_is_refused_in_json(api_for, owner, minilm):
    response = api_for(owner).get(f"/api/v1/models/{minilm.model.name}/versions/1/archive?format=rar")
    assert response.status_code == 400 and "format=tar" in response.json()["error"]["message"]
    reserved = api_for(owner).get(f"/api/v1/models/{minilm.model.name}/aliases/staging/manifest/")
    assert reserved.status_code == 404 and "reserved" in reserved.json()["error"]["message"]  # read like the alias lookup


def test_an_archive_stops_before_a_damaged_blob_is_sent_whole(api_for, owner, minilm, isolated_artifacts):
    weights = FILES["model.safetensors"]
    (isolated_artifacts / blob_key(sha256(weights))).write_bytes(b"X" + weights[1:])
    response = api_for(owner).get(f"/api/v1/models/{minilm.model.name}/versions/1/archive")
    with pytest.raises(OSError, match="does not match its SHA-256"):
        streamed(response)


def test_the_archive_streams_from_s3(api_for, owner, model, s3):
    version = register_version(model, owner, files=FILES)
    for kind in ("zip", "tar"):
        response = api_for(owner).get(f"/api/v1/models/{model.name}/versions/1/archive?format={kind}")
        body = streamed(response)
        assert int(response["Content-Length"]) == len(body)
        _check_archive(kind, body, version)


ARTIFACT = "/api/v1/models/sentiment/versions/1/artifacts/model.safetensors"


def test_an_artifact_answers_head_etag_and_304(api_for, owner, minilm):
    api, weights = api_for(owner), FILES["model.safetensors"]
    head = api.head(ARTIFACT)
    assert head.status_code == 200 and head["Content-Length"] == str(len(weights)) and head["Accept-Ranges"] == "bytes"
    assert head["ETag"] == f'"{sha256(weights)}"' and not b"".join(head.streaming_content if head.streaming else [head.content])
    assert api.get(ARTIFACT, HTTP_IF_NONE_MATCH=head["ETag"]).status_code == 304
    assert api.get(ARTIFACT, HTTP_IF_NONE_MATCH='"other", ' + head["ETag"]).status_code == 304
    full = api.get(ARTIFACT, HTTP_IF_NONE_MATCH='"other"')
    assert full.status_code == 200 and streamed(full) == weights and full["X-Checksum-SHA256"] == sha256(weights)


@pytest.mark.parametrize(
    "header, first, last",
    [("bytes=0-9", 0, 9), ("bytes=1000-", 1000, None), ("bytes=-7", -7, None), ("bytes=5-99999999", 5, None)],
)
def test_an_artifact_answers_a_single_range_with_206(api_for, owner, minilm, header, first, last):
    weights = FILES["model.safetensors"]
    response = api_for(owner).get(ARTIFACT, HTTP_RANGE=header)
    expected = weights[first : (last + 1 if last is not None else None)]
    assert response.status_code == 206 and streamed(response) == expected
    start = first if first >= 0 else len(weights) + first
    assert response["Content-Range"] == f"bytes {start}-{start + len(expected) - 1}/{len(weights)}"
    assert response["Content-Length"] == str(len(expected))


def test_an_unsatisfiable_range_is_416_and_other_forms_send_the_whole_file(api_for, owner, minilm):
    api, weights = api_for(owner), FILES["model.safetensors"]
    refused = api.get(ARTIFACT, HTTP_RANGE=f"bytes={len(weights)}-")
    assert refused.status_code == 416 and refused["Content-Range"] == f"bytes */{len(weights)}"
    assert refused.json()["error"]["code"] == "range_not_satisfiable"
    for ignored in ("bytes=0-1,5-6", "items=0-5", "bytes=9-2"):
        assert streamed(api.get(ARTIFACT, HTTP_RANGE=ignored)) == weights
    stale = api.get(ARTIFACT, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"an-older-file"')
    assert stale.status_code == 200 and streamed(stale) == weights


def test_an_s3_download_redirects_with_the_sha256_and_asks_s3_for_its_checksum(api_for, owner, model, s3):
    register_version(model, owner, files=FILES)
    api, weights = api_for(owner), FILES["model.safetensors"]
    response = api.get(ARTIFACT)
    assert response.status_code == 302 and response["X-Checksum-SHA256"] == sha256(weights) and response["ETag"] == f'"{sha256(weights)}"'
    assert "x-amz-checksum-mode=ENABLED" in response["Location"]
    with urllib.request.urlopen(response["Location"], timeout=30) as fetched:
        assert fetched.read() == weights
    assert api.get(ARTIFACT, HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304
    head = api.head(ARTIFACT)
    assert head.status_code == 200 and head["Content-Length"] == str(len(weights))


def test_a_logged_in_user_downloads_the_archive_with_the_session(web_for, owner, outsider, minilm):
    download = web_for(owner).get("/api/v1/models/sentiment/versions/1/archive")
    assert download.status_code == 200 and zipfile.ZipFile(io.BytesIO(streamed(download))).read("config.json") == FILES["config.json"]
    assert web_for(outsider).get("/api/v1/models/sentiment/versions/1/archive").status_code == 404


def test_the_manifest_and_archive_cost_the_same_queries_whatever_the_number_of_files(api_for, owner, model):
    register_version(model, owner, files={"a.bin": b"a"})
    register_version(model, owner, files={f"shard-{index}.bin": bytes([index]) for index in range(40)})
    api = api_for(owner)
    api.get("/api/v1/models/sentiment/versions/1/manifest/")  # the token's first use is recorded once
    counts = []
    for number in (1, 2):
        for suffix in ("manifest/", "archive"):
            with CaptureQueriesContext(connection) as queries:
                response = api.get(f"/api/v1/models/sentiment/versions/{number}/{suffix}")
                streamed(response) if response.streaming else response.content
            counts.append(len(queries))
    assert counts == [3, 3, 3, 3]  # model with the permission check, version, its files (the token is remembered)
