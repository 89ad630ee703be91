"""Upload sessions through the API: declare, send (offsets on local disk, presigned parts on moto's S3), register.

The rules under test: dedup only for bytes the caller could already read, bytes that differ from the declared SHA-256
never attach, refusals before any byte, abandoned sessions swept, registration atomic and once.
"""

import fcntl
import hashlib
import http.client
import os
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.accounts.models import TokenScope
from apps.accounts.services import api_token_create
from apps.models.services import model_create
from apps.validation.models import Verdict
from apps.validation.services import validation_run
from apps.versions.blobs import artifact_storage, blob_key, blob_storage_key
from apps.versions.models import Artifact, BlobLocation, BlobReservation, ModelVersion, UploadSession, UploadSessionFile
from apps.versions.spool import spool_dir
from tests.factories import register_version
from tests.s3 import moto_endpoint_fixture, s3_fixture  # noqa: F401  (fixtures: a moto S3 server and a fresh bucket)

pytestmark = pytest.mark.django_db
TUS = "application/offset+octet-stream"
MiB = 1024 * 1024


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def open_session(api, model_name: str, files: dict[str, bytes], *, declare=True, metadata=None):
    declared = [{"path": path, "size": len(data), **({"sha256": sha256(data)} if declare else {})} for path, data in files.items()]
    return api.post(f"/api/v1/models/{model_name}/uploads/", {"metadata": metadata or {}, "files": declared}, format="json")


def patch(api, url: str, data: bytes, offset: int):
    return api.generic("PATCH", urlsplit(url).path, data, content_type=TUS, HTTP_UPLOAD_OFFSET=str(offset))


def send_local(api, session: dict, files: dict[str, bytes]) -> None:
    for item in session["files"]:
        if item["status"] == "pending":
            response = patch(api, item["upload_url"], files[item["path"]], 0)
            assert response.status_code == 204, response.content


def register(api, session: dict, **headers):
    return api.post(urlsplit(session["register_url"]).path, **headers)


def test_files_sent_in_offsets_with_a_resume_register_as_one_version(api_for, owner, model):
    api = api_for(owner)
    weights, config = os.urandom(3 * MiB + 17), b'{"hidden_size": 8}'
    created = open_session(api, model.name, {"weights/model.bin": weights, "config.json": config}, metadata={"flavor": "pytorch", "metrics": {"auc": 0.9}})
    assert created.status_code == 201, created.content
    session = created.json()
    assert session["storage"] == "local" and [f["status"] for f in session["files"]] == ["pending", "pending"]
    big = session["files"][0]

    # The first request is cut after 1 MiB; HEAD says what arrived and the client goes on from there.
    assert patch(api, big["upload_url"], weights[:MiB], 0)["Upload-Offset"] == str(MiB)
    head = api.head(urlsplit(big["upload_url"]).path)
    assert (head.status_code, head["Upload-Offset"], head["Upload-Length"]) == (200, str(MiB), str(len(weights)))
    stale = patch(api, big["upload_url"], weights[:10], 0)
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "offset_mismatch" and stale["Upload-Offset"] == str(MiB)
    done = patch(api, big["upload_url"], weights[MiB:], MiB)
    assert (done.status_code, done["Upload-Offset"], done["Upload-Status"]) == (204, str(len(weights)), "stored")
    assert patch(api, session["files"][1]["upload_url"], config, 0).status_code == 204

    state = api.get(f"/api/v1/models/{model.name}/uploads/{session['id']}/").json()
    assert [f["status"] for f in state["files"]] == ["stored", "stored"]
    assert artifact_storage().exists(blob_key(sha256(weights)))
    assert not list(spool_dir().glob(f"session-{session['id']}-*")), "the spooled file became the blob (moved, not copied)"

    response = register(api, session)
    assert response.status_code == 201, response.content
    assert response.json()["number"] == 1 and response.json()["flavor"] == "pytorch"
    version = ModelVersion.objects.get(model=model)
    assert {a.path: (a.sha256, a.size) for a in version.artifacts.all()} == {
        "weights/model.bin": (sha256(weights), len(weights)),
        "config.json": (sha256(config), len(config)),
    }
    again = register(api, session)
    assert again.status_code == 400 and "already registered" in again.json()["error"]["message"]
    assert ModelVersion.objects.filter(model=model).count() == 1


def test_a_file_the_caller_can_read_is_not_sent_again_but_another_teams_must_be(api_for, owner, outsider, model):
    secret = os.urandom(4096)
    register_version(model, owner, files={"weights.bin": secret})
    # The owner may read v1: the same bytes are "stored" at once, nothing to send.
    mine = open_session(api_for(owner), model.name, {"renamed/weights.bin": secret}).json()
    assert mine["files"][0]["status"] == "stored" and mine["files"][0]["deduplicated"] is True
    assert register(api_for(owner), mine).status_code == 201

    # An outsider who knows the digest (but may not view the model) must send the bytes: possession of a hash is not access.
    theirs = model_create(name="outsider-model", actor=outsider)
    api = api_for(outsider)
    session = open_session(api, theirs.name, {"stolen.bin": secret}).json()
    assert session["files"][0]["status"] == "pending" and session["files"][0]["deduplicated"] is False
    refused = register(api, session)
    assert refused.status_code == 400 and "Not uploaded yet: stolen.bin" in refused.json()["error"]["message"]
    wrong = patch(api, session["files"][0]["upload_url"], os.urandom(4096), 0)
    assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "checksum_mismatch"
    assert not ModelVersion.objects.filter(model=theirs).exists()
    assert not Artifact.objects.filter(version__model=theirs).exists()


def test_bytes_that_differ_from_the_declared_digest_are_discarded_and_the_file_starts_over(api_for, owner, model):
    api = api_for(owner)
    declared, sent = os.urandom(2048), os.urandom(2048)
    session = open_session(api, model.name, {"model.bin": declared}).json()
    url = session["files"][0]["upload_url"]
    response = patch(api, url, sent, 0)
    assert response.status_code == 409 and response["Upload-Offset"] == "0"
    assert "send the file again from the start" in response.json()["error"]["message"]
    assert not artifact_storage().exists(blob_key(sha256(sent))), "mismatched bytes are never stored"
    assert api.head(urlsplit(url).path)["Upload-Offset"] == "0"
    assert patch(api, url, declared, 0).status_code == 204
    assert register(api, session).status_code == 201


def complete(api, item: dict, digest: str | None = None):
    return api.post(urlsplit(item["complete_url"]).path, {"sha256": digest} if digest else None, format="json" if digest else None)


def test_a_file_declared_without_its_digest_is_fixed_by_the_one_the_client_sends_at_completion(api_for, owner, model):
    api = api_for(owner)
    meant, sent = os.urandom(4096), os.urandom(4096)
    session = open_session(api, model.name, {"model.bin": meant}, declare=False).json()
    item = session["files"][0]
    assert patch(api, item["upload_url"], sent, 0).status_code == 204  # nothing to check against yet
    refused = complete(api, item, sha256(meant))
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "checksum_mismatch" and refused["Upload-Offset"] == "0"
    state = api.get(f"/api/v1/models/{model.name}/uploads/{session['id']}/").json()["files"][0]
    assert (state["status"], state["sha256"], state["offset"]) == ("pending", None, 0), "un-stored: sent again from the start"
    assert register(api, session).status_code == 400 and not ModelVersion.objects.exists()

    bad = complete(api, item, "ABC")
    assert bad.status_code == 400 and "sha256" in bad.json()["error"]["fields"]
    assert patch(api, item["upload_url"], meant, 0).status_code == 204
    done = complete(api, item, sha256(meant))
    assert done.status_code == 200 and done.json()["sha256"] == sha256(meant)
    assert complete(api, item, sha256(meant)).json() == done.json(), "completing again with the same digest changes nothing"
    assert register(api, session).status_code == 201
    assert Artifact.objects.get(version__model=model).sha256 == sha256(meant)


def test_a_file_declared_without_its_digest_is_sent_even_when_the_caller_could_read_those_bytes(api_for, owner, model):
    data = os.urandom(2048)
    register_version(model, owner, files={"weights.bin": data})
    session = open_session(api_for(owner), model.name, {"weights.bin": data}, declare=False).json()
    assert (session["files"][0]["status"], session["files"][0]["deduplicated"]) == ("pending", False), "dedup needs the digest up front"


def test_bytes_another_process_spooled_after_a_restart_are_hashed_as_they_are(api_for, owner, model):
    """This process keeps the hash state of the first attempt's prefix; the file then fails in another web process and
    is sent again there up to the same offset with other bytes. The suffix sent here must be hashed after the bytes
    the spool holds, not the first attempt's: else bytes that are not the declared file land under its digest."""
    api = api_for(owner)
    declared, other = os.urandom(4096), os.urandom(2048)
    session = open_session(api, model.name, {"model.bin": declared}).json()
    url = session["files"][0]["upload_url"]
    assert patch(api, url, declared[:2048], 0).status_code == 204
    spooled = spool_dir() / f"session-{session['id']}-0.part"
    spooled.unlink()  # what the other process does on the mismatch, then its restart spools other bytes
    spooled.write_bytes(other)
    response = patch(api, url, declared[2048:], 2048)
    assert response.status_code == 409 and response.json()["error"]["code"] == "checksum_mismatch"
    assert not artifact_storage().exists(blob_key(sha256(declared))), "bytes that are not the declared file are never stored under its digest"


def test_a_completion_racing_the_writer_waits_for_its_lock_and_a_second_one_answers_as_the_first(api_for, owner, model):
    """The last PATCH wrote the whole file and died before storing it; the test holds the spool lock as that writer did."""
    api = api_for(owner)
    data = os.urandom(4096)
    session = open_session(api, model.name, {"model.bin": data}).json()
    item = session["files"][0]
    assert patch(api, item["upload_url"], data[:-1], 0).status_code == 204
    spooled = spool_dir() / f"session-{session['id']}-0.part"
    complete = urlsplit(item["complete_url"]).path
    with open(spooled, "ab") as writer:
        fcntl.flock(writer.fileno(), fcntl.LOCK_EX)
        writer.write(data[-1:])
        writer.flush()
        busy = api.post(complete)
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "upload_in_progress", busy.content
        assert "complete again" in busy.json()["error"]["message"] and spooled.stat().st_size == len(data)
    first = api.post(complete)
    assert first.status_code == 200 and first.json()["status"] == "stored", first.content
    assert not spooled.exists() and artifact_storage().exists(blob_key(sha256(data)))
    second = api.post(complete)
    assert (second.status_code, second.json()) == (200, first.json()), "a second completion answers what the first did"
    late = patch(api, item["upload_url"], data[-1:], len(data) - 1)
    assert late.status_code == 409 and late.json()["error"]["code"] == "already_stored"
    assert not spooled.exists() and register(api, session).status_code == 201


def test_refusals_come_before_any_byte(api_for, owner, outsider, model):
    api = api_for(owner)
    bad_flavor = open_session(api, model.name, {"a.bin": b"x"}, metadata={"flavor": "keras3"})
    assert bad_flavor.status_code == 400 and "Unknown flavor" in bad_flavor.json()["error"]["message"]
    bad_metric = open_session(api, model.name, {"a.bin": b"x"}, metadata={"metrics": {"auc": "high"}})
    assert bad_metric.status_code == 400
    bad_parent = open_session(api, model.name, {"a.bin": b"x"}, metadata={"parents": [{"model": "nope", "version": 1, "relation": "fine_tuned_from"}]})
    assert bad_parent.status_code == 400 and "unknown or not visible" in bad_parent.json()["error"]["message"]
    bad_path = open_session(api, model.name, {"../etc/passwd": b"x"})
    assert bad_path.status_code == 400
    assert not UploadSession.objects.exists()

    # Permission first: a read-scope token, an outsider, and another user's session id.
    _, read_token = api_token_create(user=owner, name="read", scope=TokenScope.READ)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {read_token}")
    assert open_session(api, model.name, {"a.bin": b"x"}).status_code == 403
    assert open_session(api_for(outsider), model.name, {"a.bin": b"x"}).status_code == 404
    session = open_session(api_for(owner), model.name, {"a.bin": b"x"}).json()
    assert patch(api_for(outsider), session["files"][0]["upload_url"], b"x", 0).status_code == 404
    assert register(api_for(outsider), session).status_code == 404
    parts_path = f"/api/v1/models/{model.name}/uploads/{session['id']}/files/0/parts/"
    for body, field in (({"parts": []}, "parts"), ({"parts": [{"number": 0}]}, "parts"), ({"parts": [{"number": 1, "sha256": "ABC"}]}, "parts")):
        refused = api_for(owner).post(parts_path, body, format="json")
        assert refused.status_code == 400 and field in refused.json()["error"]["fields"], refused.content
    assert api_for(owner).post(parts_path, {"parts": [{"number": 1}]}, format="json").json()["error"]["code"] == "wrong_protocol"


def test_an_abandoned_session_is_swept_with_its_partial_upload(api_for, owner, model):
    api = api_for(owner)
    data = os.urandom(8192)
    session = open_session(api, model.name, {"model.bin": data}).json()
    assert patch(api, session["files"][0]["upload_url"], data[:4096], 0).status_code == 204
    assert list(spool_dir().glob(f"session-{session['id']}-*"))
    call_command("gc_artifact_blobs")
    assert UploadSession.objects.filter(pk=session["id"]).exists(), "a live session is kept"

    UploadSession.objects.filter(pk=session["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    call_command("gc_artifact_blobs")
    assert not UploadSession.objects.filter(pk=session["id"]).exists()
    assert not list(spool_dir().glob(f"session-{session['id']}-*"))
    assert api.head(urlsplit(session["files"][0]["upload_url"]).path).status_code == 404


def test_registration_is_all_or_nothing_and_replays_under_its_key(api_for, owner, model):
    api = api_for(owner)
    files = {"a.bin": os.urandom(1024), "b.bin": os.urandom(1024)}
    session = open_session(api, model.name, files, metadata={"metrics": {"auc": 0.5}}).json()
    send_local(api, session, files)
    artifact_storage().delete(blob_key(sha256(files["b.bin"])))  # as if its reservation had run out and the GC collected it
    refused = register(api, session)
    assert refused.status_code == 400 and "b.bin: its stored bytes are gone" in refused.json()["error"]["message"]
    assert not ModelVersion.objects.exists() and UploadSession.objects.get(pk=session["id"]).status == "open"

    retry = open_session(api, model.name, files, metadata={"metrics": {"auc": 0.5}}).json()
    send_local(api, retry, files)
    first = register(api, retry, HTTP_IDEMPOTENCY_KEY="reg-1")
    replay = register(api, retry, HTTP_IDEMPOTENCY_KEY="reg-1")
    assert first.status_code == replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    assert first.json() == replay.json() and ModelVersion.objects.count() == 1


# --- S3 (moto's server): parts go straight to the bucket -------------------------------------------------------------


def put_part(part: dict, data: bytes) -> int:
    url = urlsplit(part["url"])
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.request("PUT", f"{url.path}?{url.query}", body=data, headers=part["headers"])
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def send_parts(api, item: dict, data: bytes, numbers=None) -> None:
    size = item["part_size"]
    count = max(1, -(-len(data) // size))
    wanted = [n for n in range(1, count + 1) if numbers is None or n in numbers]
    pieces = {n: data[(n - 1) * size : n * size] for n in wanted}
    answer = api.post(urlsplit(item["parts_url"]).path, {"parts": [{"number": n, "sha256": sha256(pieces[n])} for n in wanted]}, format="json")
    assert answer.status_code == 200, answer.content
    for part in answer.json()["parts"]:
        assert part["headers"]["x-amz-checksum-sha256"]
        assert put_part(part, pieces[part["number"]]) == 200


def s3_sent(api, model_name: str, data: bytes, *, declare=True) -> dict:
    """A session of one file, model.bin, whose parts are all in the bucket (not completed)."""
    session = open_session(api, model_name, {"model.bin": data}, declare=declare).json()
    send_parts(api, session["files"][0], data)
    return session


def test_on_s3_parts_go_to_the_bucket_resume_from_list_parts_and_register(api_for, owner, model, s3, settings):
    settings.UPLOAD_PART_BYTES = 5 * MiB
    api = api_for(owner)
    weights, config = os.urandom(5 * MiB + 1000), b"{}"
    session = open_session(api, model.name, {"model.bin": weights, "config.json": config}).json()
    assert session["storage"] == "s3" and "upload_url" not in session["files"][0]
    big = session["files"][0]
    send_parts(api, big, weights, numbers={2})
    state = api.get(f"/api/v1/models/{model.name}/uploads/{session['id']}/").json()
    assert state["files"][0]["parts"] == [{"number": 2, "size": 1000}], "a client that restarted learns which parts arrived"
    early = api.post(urlsplit(big["complete_url"]).path)
    assert early.status_code == 409 and "lacks parts 1" in early.json()["error"]["message"]
    send_parts(api, big, weights, numbers={1})
    send_parts(api, session["files"][1], config)
    for item in session["files"]:
        done = api.post(urlsplit(item["complete_url"]).path)
        assert done.status_code == 200 and done.json()["status"] == "stored", done.content
    located = [blob_storage_key(sha256(weights)), blob_storage_key(sha256(config))]
    assert all(key.startswith(f"uploads/{session['id']}/") for key in located), "verified bytes stay where they were sent: no copy"
    assert s3.keys() == sorted(located) and s3.body(located[0]) == weights
    response = register(api, session)
    assert response.status_code == 201, response.content
    assert {a.path for a in ModelVersion.objects.get(model=model).artifacts.all()} == {"model.bin", "config.json"}


def test_on_s3_mismatched_bytes_never_reach_the_content_address(api_for, owner, model, s3):
    api = api_for(owner)
    declared, sent = os.urandom(4096), os.urandom(4096)
    session = open_session(api, model.name, {"model.bin": declared}).json()
    item = session["files"][0]
    # Without a part digest the URL accepts any bytes (moto does not check part digests either): completion catches it.
    answer = api.post(urlsplit(item["parts_url"]).path, {"parts": [{"number": 1}]}, format="json").json()
    assert put_part(answer["parts"][0], sent) == 200
    refused = api.post(urlsplit(item["complete_url"]).path)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "checksum_mismatch"
    assert s3.keys() == [], "neither the staging object nor a blob is left"
    send_parts(api, item, declared)  # the file starts over under a fresh multipart upload
    assert api.post(urlsplit(item["complete_url"]).path).status_code == 200
    assert register(api, session).status_code == 201


def test_on_s3_an_abandoned_session_aborts_its_multipart_uploads(api_for, owner, model, s3):
    api = api_for(owner)
    session = open_session(api, model.name, {"model.bin": os.urandom(2048)}).json()
    assert len(s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", [])) == 1
    UploadSession.objects.filter(pk=session["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    call_command("gc_artifact_blobs")
    assert s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []
    assert not UploadSession.objects.exists()


def test_on_s3_a_file_declared_without_its_digest_is_checked_at_completion_by_reading_it_back(api_for, owner, model, s3):
    api = api_for(owner)
    meant, sent = os.urandom(4096), os.urandom(4096)
    session = open_session(api, model.name, {"model.bin": meant}, declare=False).json()
    item = session["files"][0]
    send_parts(api, item, sent)
    refused = complete(api, item, sha256(meant))
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "checksum_mismatch"
    assert s3.keys() == [], "the other bytes were deleted"
    assert register(api, session).status_code == 400 and not ModelVersion.objects.exists()
    send_parts(api, item, meant)  # a fresh multipart upload
    done = complete(api, item, sha256(meant))
    assert done.status_code == 200 and done.json()["sha256"] == sha256(meant), done.content
    assert s3.keys() == [blob_storage_key(sha256(meant))] and s3.body(blob_storage_key(sha256(meant))) == meant
    assert register(api, session).status_code == 201


def test_on_s3_an_upload_never_replaces_a_blob_another_team_stored(api_for, owner, outsider, model, s3):
    secret = os.urandom(4096)
    register_version(model, owner, files={"weights.bin": secret})
    theirs = model_create(name="outsider-model", actor=outsider)
    api = api_for(outsider)
    session = open_session(api, theirs.name, {"stolen.bin": secret}).json()
    item = session["files"][0]
    assert item["status"] == "pending", "the outsider may not read the owner's bytes: they must send them"
    send_parts(api, item, os.urandom(4096))
    refused = complete(api, item)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "checksum_mismatch"
    assert s3.keys() == [blob_key(sha256(secret))] and s3.body(blob_key(sha256(secret))) == secret, "the owner's blob is untouched"
    send_parts(api, item, secret)  # the real bytes: verified, then dropped as a second copy of the blob already there
    assert complete(api, item).status_code == 200
    assert s3.keys() == [blob_key(sha256(secret))] and s3.body(blob_key(sha256(secret))) == secret
    assert register(api, session).status_code == 201


def test_on_s3_a_second_upload_of_stored_bytes_is_not_kept_twice_and_a_retried_completion_keeps_the_blob(api_for, owner, model, s3):
    api = api_for(owner)
    weights = os.urandom(4096)
    first = s3_sent(api, model.name, weights, declare=False)
    assert complete(api, first["files"][0], sha256(weights)).status_code == 200
    located = blob_storage_key(sha256(weights))
    assert complete(api, first["files"][0], sha256(weights)).status_code == 200, "a completion sent again changes nothing"
    assert s3.keys() == [located]
    assert register(api, first).status_code == 201
    second = s3_sent(api, model.name, weights, declare=False)  # undeclared: never deduplicated
    assert complete(api, second["files"][0], sha256(weights)).status_code == 200
    assert s3.keys() == [located], "the second copy was dropped: the first one is the blob"
    assert register(api, second).status_code == 201
    for version in ModelVersion.objects.filter(model=model):
        redirect = api.get(f"/api/v1/models/{model.name}/versions/{version.number}/artifacts/model.bin")
        assert redirect.status_code == 302 and urlsplit(redirect["Location"]).path == f"/{s3.bucket}/{located}"


def test_on_s3_a_blob_left_where_it_was_uploaded_is_collected_only_when_unused(api_for, owner, model, s3):
    api = api_for(owner)
    kept, dropped = os.urandom(4096), os.urandom(4096)
    used = s3_sent(api, model.name, kept)
    assert complete(api, used["files"][0]).status_code == 200
    assert register(api, used).status_code == 201
    abandoned = s3_sent(api, model.name, dropped)
    assert complete(api, abandoned["files"][0]).status_code == 200
    assert len(s3.keys()) == 2 and BlobLocation.objects.count() == 2
    past = timezone.now() - timedelta(hours=1)  # the sessions expired, and with them their blob reservations
    UploadSession.objects.update(expires_at=past)
    BlobReservation.objects.update(expires_at=past)
    BlobLocation.objects.update(created_at=past)
    call_command("gc_artifact_blobs", "--grace-minutes", "1")
    assert s3.keys() == [blob_storage_key(sha256(kept))] and s3.body(blob_storage_key(sha256(kept))) == kept
    assert list(BlobLocation.objects.values_list("sha256", flat=True)) == [sha256(kept)]


def test_on_s3_a_completion_that_died_after_the_store_joined_the_parts_is_finished_by_the_next(api_for, owner, model, s3):
    api = api_for(owner)
    weights = os.urandom(4096)
    session = s3_sent(api, model.name, weights)
    file = UploadSessionFile.objects.get()
    parts = s3.client.list_parts(Bucket=s3.bucket, Key=file.upload_key, UploadId=file.upload_id)["Parts"]
    s3.client.complete_multipart_upload(  # what the first completion did before its worker was killed
        Bucket=s3.bucket, Key=file.upload_key, UploadId=file.upload_id, MultipartUpload={"Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]}
    )
    done = complete(api, session["files"][0])
    assert done.status_code == 200 and done.json()["status"] == "stored", done.content
    assert s3.keys() == [file.upload_key] == [blob_storage_key(sha256(weights))]
    assert register(api, session).status_code == 201


def test_on_s3_a_refused_completion_never_deletes_what_a_racing_completion_made_a_blob(api_for, owner, model, s3):
    api = api_for(owner)
    weights = os.urandom(4096)
    session = s3_sent(api, model.name, weights, declare=False)
    file = UploadSessionFile.objects.get()
    # As if a completion with the right digest located the bytes while this one, sent with another digest, read them.
    BlobLocation.objects.create(sha256=sha256(weights), key=file.upload_key)
    refused = complete(api, session["files"][0], sha256(b"other bytes"))
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "checksum_mismatch"
    assert s3.keys() == [file.upload_key] and s3.body(file.upload_key) == weights, "the blob stays"
    file.refresh_from_db()
    assert file.upload_key not in s3.keys(), "the file starts over at a new key"


def test_on_s3_the_validation_job_reads_a_blob_where_its_upload_left_it(api_for, owner, model, s3):
    api = api_for(owner)
    weights = os.urandom(4096)
    session = s3_sent(api, model.name, weights)
    assert complete(api, session["files"][0]).status_code == 200
    assert register(api, session).status_code == 201
    job = ModelVersion.objects.get(model=model).validation_jobs.get()
    validation_run(job_id=job.pk)
    assert job.checks.get(name="integrity").verdict == Verdict.PASS
