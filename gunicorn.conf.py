"""gunicorn settings for the web processes: `gunicorn -c gunicorn.conf.py` (gunicorn also reads this file by itself
when started from this folder). See README, "Production topology".

Worker class: gthread, not sync. gunicorn's `timeout` kills a worker whose heartbeat stops. A sync worker beats only
between requests, so a 10 GB upload from a slow client (an hour at 25 Mbit/s) would be killed after `timeout` unless
the timeout were set above the longest upload, which also leaves a truly wedged worker in place for that long. A
gthread worker beats from its main loop while its threads serve requests, so `timeout` stays short and still catches
a stuck process, and uploads of any length and speed go on. A request blocked on the database is bounded by the
database timeouts in settings (connect, statement, answer), not by gunicorn.

Threads share a process: an upload streams to a spool file through a hashing handler, so memory stays flat whatever
the number of uploads. Each thread keeps its own database connection (CONN_MAX_AGE): size PostgreSQL's
max_connections for (web processes x WEB_CONCURRENCY x GUNICORN_THREADS) + workers + a margin.

No max_requests: a recycled worker would cut the uploads in flight. A restart (deploy, HUP) gives in-flight requests
GUNICORN_GRACEFUL_TIMEOUT seconds; longer uploads are cut and their spool files removed by the cleanup.
"""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent


def _whole(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, str(default)).strip()
    if not raw.isdigit() or int(raw) < minimum:
        raise SystemExit(f"gunicorn.conf.py: {name} must be a whole number >= {minimum}, got {raw!r}")
    return int(raw)


wsgi_app = "registry_site.wsgi:application"
bind = [f"{os.environ.get('HOST', '0.0.0.0')}:{_whole('PORT', 8000)}"]
workers = _whole("WEB_CONCURRENCY", 2)
worker_class = "gthread"
threads = _whole("GUNICORN_THREADS", 4)
timeout = _whole("GUNICORN_TIMEOUT", 60)  # silence of a worker's main loop, not the length of a request
graceful_timeout = _whole("GUNICORN_GRACEFUL_TIMEOUT", 300)
keepalive = _whole("GUNICORN_KEEPALIVE", 5)  # behind a load balancer, keep this above the balancer's idle timeout
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # heartbeat files off a possibly slow disk
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")  # the proxy that sets X-Forwarded-Proto
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# gunicorn's control socket defaults to one path per user ($XDG_RUNTIME_DIR or ~/.gunicorn/gunicorn.ctl), which a second
# instance on the same host would take over; it stays off unless GUNICORN_CONTROL_SOCKET names a path for this instance.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not control_socket

# Uploads spool on this host's disk (the system temp dir when artifacts are on S3). A worker killed mid-upload leaves
# its spool file behind, and the periodic cleanup task runs on whichever host runs a Celery worker, not here: so each
# web master sweeps its own host's abandoned spool files, when it starts and then every UPLOAD_SPOOL_SWEEP_SECONDS
# (0: leave it to a cron job running `manage.py gc_artifact_blobs --spool-only`).
spool_sweep_seconds = _whole("UPLOAD_SPOOL_SWEEP_SECONDS", 3600, minimum=0)


def _sweep_spool_forever(log) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "registry_site.settings.production")}
    while True:
        finished = subprocess.run(
            [sys.executable, "manage.py", "gc_artifact_blobs", "--spool-only"], cwd=ROOT, env=env, capture_output=True, text=True,
        )
        if finished.returncode == 0:
            log.info("spool sweep: %s", finished.stdout.strip())
        else:
            log.warning("spool sweep failed (exit %s): %s", finished.returncode, finished.stderr.strip()[-2000:])
        time.sleep(spool_sweep_seconds)


def when_ready(server) -> None:
    if spool_sweep_seconds:
        threading.Thread(target=_sweep_spool_forever, args=(server.log,), name="spool-sweep", daemon=True).start()
