"""Scale-out: two web nodes and two workers on shared PostgreSQL, Redis and S3, with no node-local state in the way.

The nodes are what production runs (gunicorn with gunicorn.conf.py, Celery workers and one beat, production settings
from environment variables); S3 is a moto server on loopback; the queue is private to this run. The client is the
`model-registry` CLI and plain HTTP, as pipelines use them.
"""

import json
import os
import subprocess
import sys
import time
import uuid
from contextlib import redirect_stdout
from io import StringIO

import pytest
from django.db import connection

from apps.accounts.models import TokenScope

from apps.accounts.services import api_token_create
from apps.audit.models import AuditEntry
from apps.validation import services as validation_services
from apps.validation.models import JobStatus, ValidationJob
from apps.versions.models import ModelVersion
from registry_cli import main as cli
from tests.factories import register_version
from tests.helpers import onnx_model
from tests.nodes import ROOT, CeleryNode, WebNode, production_env
from tests.validation.workers import wait_for
from tests.s3 import REGION, empty_and_delete_bucket, moto_endpoint_fixture, s3_client  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

HOST = "registry.test"  # what a load balancer would send to every node
SLOW_BYTES = 6_000_000


@pytest.fixture
def bucket(moto_endpoint):
    client = s3_client(moto_endpoint)
    name = f"cluster-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    yield name
    empty_and_delete_bucket(client, name)


@pytest.fixture
def cluster_env(bucket, moto_endpoint, tmp_path, settings):
    db = connection.settings_dict
    return production_env(
        database_url=f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        static_root=tmp_path / "static",
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        CELERY_QUEUE=f"cluster-{os.getpid()}",
        ARTIFACT_S3_BUCKET=bucket,
        ARTIFACT_S3_ENDPOINT_URL=moto_endpoint,
        ARTIFACT_S3_REGION=REGION,
        ARTIFACT_S3_ACCESS_KEY_ID="testing",
        ARTIFACT_S3_SECRET_ACCESS_KEY="testing",
        ARTIFACT_S3_ADDRESSING_STYLE="path",
        ARTIFACT_ROOT=tmp_path / "no-local-artifacts",  # unused with S3: a node reading it would find nothing
        VALIDATION_LEASE_SECONDS=3,
        VALIDATION_RESEND_AFTER_SECONDS=3,
        VALIDATION_SWEEP_SECONDS=1,
        GUNICORN_GRACEFUL_TIMEOUT=5,
    )


class Cluster:
    def __init__(self, env: dict[str, str], folder):
        queue = env["CELERY_QUEUE"]
        self.web = [WebNode(env, folder / f"web-{name}.log") for name in "ab"]
        worker_env = {**env, "VALIDATION_READ_BYTES_PER_SECOND": "2000000"}  # slow enough to be killed mid-job
        self.workers = [
            CeleryNode(
                worker_env, folder / f"worker-{name}.log", "worker", "-n", f"{name}@127.0.0.1", "-Q", queue, "--concurrency=1",
                "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
            )
            for name in "ab"
        ]
        self.beat = CeleryNode(env, folder / "beat.log", "beat", "-s", str(folder / "beat-schedule"), "--loglevel=INFO")

    def start(self) -> "Cluster":
        for process in (*self.workers, self.beat, *self.web):
            process.start()
        return self

    def stop(self) -> str:
        for process in (*self.web, self.beat, *self.workers):
            process.stop()
        return "\n".join(f"--- {process.log_path.name}\n{process.log()[-2500:]}" for process in (*self.workers, self.beat, *self.web))


@pytest.fixture
def cluster(cluster_env, tmp_path):
    running = Cluster(cluster_env, tmp_path).start()
    yield running
    running.stop()


def run_cli(node: WebNode, token: str, *argv: str) -> dict:
    output = StringIO()
    with redirect_stdout(output):
        code = cli.main(list(argv), environ={"REGISTRY_URL": f"http://127.0.0.1:{node.port}", "REGISTRY_TOKEN": token})
    assert code == 0, (argv, output.getvalue())
    return json.loads(output.getvalue()) if output.getvalue().strip() else {}


def api(node: WebNode, token: str, method: str, path: str, payload: dict | None = None, **headers):
    body = json.dumps(payload).encode() if payload is not None else None
    answer = node.request(
        method, path, body=body, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Host": HOST, **headers},
    )
    return answer


def received_validations(worker: CeleryNode) -> int:
    return sum(1 for line in worker.log().splitlines() if "run_validation[" in line and "received" in line)


def job_of(model, number: int) -> ValidationJob:
    return ValidationJob.objects.get(version__model=model, version__number=number)


def test_two_web_nodes_and_two_workers_share_everything_and_finish_each_job_once(cluster, cluster_env, model, owner, reviewer, tmp_path):
    _, owner_token = api_token_create(user=owner, name="pipeline", scope=TokenScope.FULL)
    _, reviewer_token = api_token_create(user=reviewer, name="review", scope=TokenScope.FULL)
    node_a, node_b = cluster.web
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "model.onnx").write_bytes(onnx_model())
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "weights.dat").write_bytes(os.urandom(SLOW_BYTES))
    try:
        # Registered through node A, stored in S3, validated by whichever worker takes it.
        assert run_cli(node_a, owner_token, "register", model.name, str(tmp_path / "v1"), "--flavor", "onnx")["number"] == 1
        wait_for(lambda: job_of(model, 1).status == JobStatus.PASSED, timeout=30)

        # A slow job, and the worker that took it killed mid-job; the survivor and the beat's sweep finish it.
        before = [received_validations(worker) for worker in cluster.workers]
        assert run_cli(node_a, owner_token, "register", model.name, str(tmp_path / "v2"))["number"] == 2
        wait_for(lambda: job_of(model, 2).status == JobStatus.RUNNING, timeout=30)
        taken = [index for index, worker in enumerate(cluster.workers) if received_validations(worker) > before[index]]
        assert len(taken) == 1, [worker.log()[-2000:] for worker in cluster.workers]
        cluster.workers[taken[0]].kill()
        assert run_cli(node_b, owner_token, "register", model.name, str(tmp_path / "v1"))["number"] == 3
        wait_for(lambda: {job.status for job in ValidationJob.objects.all()} == {JobStatus.PASSED}, timeout=45)

        # Promoted through node A, approved through node B.
        staged = api(node_a, owner_token, "POST", f"/api/v1/models/{model.name}/versions/1/transitions/", {"to_stage": "staging", "comment": "ready"})
        assert staged.status == 201, staged.body
        asked = api(node_a, owner_token, "POST", f"/api/v1/models/{model.name}/versions/1/transitions/", {"to_stage": "production", "comment": "ship"})
        assert asked.status == 201, asked.body
        approved = api(node_b, reviewer_token, "POST", f"/api/v1/transition-requests/{asked.json()['id']}/approve/", {"comment": "ok"})
        assert approved.status == 200 and approved.json()["status"] == "applied", approved.body

        # Both nodes answer the stage with the same body under the same ETag, and honour each other's ETag.
        stage = f"/api/v1/models/{model.name}/stages/production/"
        answers = [api(node, owner_token, "GET", stage) for node in (node_a, node_b, node_a, node_b)]
        assert {answer.status for answer in answers} == {200}
        assert len({answer.headers["etag"] for answer in answers}) == 1
        assert len({answer.body for answer in answers}) == 1 and json.loads(answers[0].body)["number"] == 1
        assert api(node_b, owner_token, "GET", stage, **{"If-None-Match": answers[0].headers["etag"]}).status == 304

        # An artifact registered through node A downloads through node B (S3, checksum checked by the CLI).
        fetched = run_cli(node_b, owner_token, "download", model.name, "2", "weights.dat", "-o", str(tmp_path / "fetched.dat"))
        assert (tmp_path / "fetched.dat").read_bytes() == (tmp_path / "v2" / "weights.dat").read_bytes(), fetched
    finally:
        logs = cluster.stop()

    jobs = {job.version.number: job for job in ValidationJob.objects.select_related("version")}
    assert sorted(jobs) == [1, 2, 3] and ModelVersion.objects.count() == 3, logs
    assert {number: job.attempts for number, job in jobs.items()} == {1: 1, 2: 2, 3: 1}, logs
    finished = AuditEntry.objects.filter(action="validation.finished")
    assert sorted(finished.values_list("object_id", flat=True)) == sorted(str(job.pk) for job in jobs.values()), logs
    verified = subprocess.run([sys.executable, "manage.py", "audit_verify"], cwd=ROOT, env=cluster_env, capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_job_taken_over_from_a_dead_worker_changes_the_stage_etag_and_body(api_for, model, owner, settings):
    """Each web process caches stage bodies by ETag: whatever the body shows must be in the ETag, or nodes disagree."""
    version = register_version(model, owner)
    job = version.validation_jobs.get()
    client = api_for(owner)
    stage = f"/api/v1/models/{model.name}/stages/draft/"

    assert validation_services._claim(job.pk)  # a worker takes the job, then dies without a heartbeat
    first = client.get(stage)
    assert first.json()["validation"]["attempts"] == 1

    settings.VALIDATION_LEASE_SECONDS = 0
    assert validation_services.validation_sweep()["reclaimed"] == 1
    assert validation_services._claim(job.pk)  # another worker takes it over: running again, second attempt
    second = client.get(stage, HTTP_IF_NONE_MATCH=first["ETag"])
    assert second.status_code == 200 and second["ETag"] != first["ETag"]
    assert second.json()["validation"]["attempts"] == 2


def test_a_web_node_sweeps_the_upload_spool_on_its_own_disk(cluster_env, tmp_path):
    """With artifacts on S3 uploads spool on each web host's disk, where the workers' periodic cleanup never runs."""
    spool = tmp_path / "spool"
    spool.mkdir()
    abandoned, fresh = spool / "tmpkilled.upload.bin", spool / "tmpwriting.upload.bin"
    for path in (abandoned, fresh):
        path.write_bytes(b"part of an upload")
    two_hours_ago = time.time() - 7200
    os.utime(abandoned, (two_hours_ago, two_hours_ago))
    node = WebNode({**cluster_env, "FILE_UPLOAD_TEMP_DIR": str(spool), "UPLOAD_SPOOL_GRACE_MINUTES": "60"}, tmp_path / "web.log").start()
    try:
        wait_for(lambda: not abandoned.exists(), timeout=30)
    finally:
        node.stop()
    assert fresh.exists(), node.log()[-2000:]
