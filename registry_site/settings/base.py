"""Settings shared by every environment.

Only this package reads the environment. A bad value stops start-up with a message naming the variable.
"""

import math
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()


def env_bytes(name: str, default: int) -> int:
    """An integer byte count, failing fast with the variable's name on a bad value."""
    raw = env.str(name, default=str(default))
    try:
        value = int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number of bytes, got {raw!r}") from exc
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be positive, got {value}")
    return value


def env_flag(name: str, default: bool) -> bool:
    """true/false (also 1/0, yes/no, on/off), failing fast with the variable's name on anything
    else (django-environ's `env.bool` reads a misspelt `flase` as false, silently)."""
    raw = env.str(name, default=str(default)).strip().lower()
    if raw not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise ImproperlyConfigured(f"{name} must be true or false, got {raw!r}")
    return raw in ("true", "1", "yes", "on")


def _env_positive_int(name: str, default: int) -> int:
    raw = env.str(name, default=str(default)).strip()
    if not raw.isdigit() or int(raw) <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive whole number, got {raw!r}")
    return int(raw)


def _outbox_settings(prefix: str, *, max_attempts: int, retry_base_seconds: int, timeout: tuple[str, int]) -> dict:
    """An outbox's retry settings (apps.web.outbox.Outbox): `<prefix>_MAX_ATTEMPTS`, `_RETRY_BASE_SECONDS`,
    `_RETRY_MAX_SECONDS`, `_LEASE_SECONDS` and `_RESEND_AFTER_SECONDS`. The attempt's timeout must be shorter than the
    lease, or the sweep would hand a slow attempt to a second worker while the first still waits."""
    values = {
        f"{prefix}_MAX_ATTEMPTS": _env_positive_int(f"{prefix}_MAX_ATTEMPTS", max_attempts),
        f"{prefix}_RETRY_BASE_SECONDS": _env_positive_int(f"{prefix}_RETRY_BASE_SECONDS", retry_base_seconds),
        f"{prefix}_RETRY_MAX_SECONDS": _env_positive_int(f"{prefix}_RETRY_MAX_SECONDS", 3600),
        f"{prefix}_LEASE_SECONDS": _env_positive_int(f"{prefix}_LEASE_SECONDS", 120),
        f"{prefix}_RESEND_AFTER_SECONDS": _env_positive_int(f"{prefix}_RESEND_AFTER_SECONDS", 60),
    }
    timeout_name, timeout_seconds = timeout
    if timeout_seconds >= values[f"{prefix}_LEASE_SECONDS"]:
        raise ImproperlyConfigured(f"{timeout_name} ({timeout_seconds}) must be shorter than {prefix}_LEASE_SECONDS ({values[f'{prefix}_LEASE_SECONDS']})")
    return values


SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="insecure-local-development-key-change-me")
DEBUG = env_flag("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "guardian",
    "taggit",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "axes",
    "apps.accounts",
    "apps.audit",
    "apps.models",
    "apps.versions",
    "apps.lineage",
    "apps.cards",
    "apps.approvals",
    "apps.validation",
    "apps.events",
    "apps.signing",
    "apps.mlflow_api",
    "apps.notifications",
    "apps.comments",
]

MIDDLEWARE = [
    "apps.audit.middleware.RequestIdMiddleware",
    "registry_site.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "apps.accounts.middleware.UnstorableUrlMiddleware",  # a NUL in the URL is a 400, not a database error
    "apps.versions.middleware.UploadGateMiddleware",  # before CSRF, which reads (and spools) the body
    "apps.versions.spool.SpoolWriteFailedMiddleware",  # outside CSRF, which reads (and spools) the body
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "registry_site.middleware.LoginRequiredMiddleware",  # Django's, asking the view before loading the session's user
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out log-in into the 429 page (AXES_LOCKOUT_CALLABLE)
]

ROOT_URLCONF = "registry_site.urls"
WSGI_APPLICATION = "registry_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "registry_site.context_processors.status_enums",
            ],
        },
    },
]

def env_seconds(name: str, default: float, *, minimum: float = 0, whole: bool = False) -> float:
    """A duration in seconds, failing fast with the variable's name unless it is a finite number >= minimum."""
    raw = env.str(name, default=str(default)).strip()
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not minimum <= value < math.inf or (whole and not value.is_integer()):
        kind = "a whole number of seconds" if whole else "a number of seconds"
        raise ImproperlyConfigured(f"{name} must be {kind}, at least {minimum:g}; got {raw!r}")
    return value


# A database that stops answering costs a request seconds, never a worker: libpq gives up connecting after the
# connect timeout, the server cancels a statement after the statement timeout, keepalives notice a server that
# vanished, and the client stops waiting for any one answer after the answer timeout (registry_site.postgresql; it
# is what catches a server that accepts connections and then never answers). 0 turns the statement timeout off, for
# a long migration say; the answer timeout defaults to 2 s more, so the server's own cancellation normally comes first.
DATABASE_CONNECT_TIMEOUT = env_seconds("DATABASE_CONNECT_TIMEOUT_SECONDS", 5, minimum=2, whole=True)  # libpq's minimum
DATABASE_STATEMENT_TIMEOUT = env_seconds("DATABASE_STATEMENT_TIMEOUT_SECONDS", 10)
DATABASE_ANSWER_TIMEOUT = env_seconds("DATABASE_ANSWER_TIMEOUT_SECONDS", DATABASE_STATEMENT_TIMEOUT + 2 if DATABASE_STATEMENT_TIMEOUT else 0)
if DATABASE_ANSWER_TIMEOUT and not DATABASE_STATEMENT_TIMEOUT or 0 < DATABASE_ANSWER_TIMEOUT <= DATABASE_STATEMENT_TIMEOUT:
    raise ImproperlyConfigured(
        "DATABASE_ANSWER_TIMEOUT_SECONDS must be longer than DATABASE_STATEMENT_TIMEOUT_SECONDS (and 0 when that is 0),"
        " so a slow statement is cancelled by the server before the client gives up on the connection"
    )
DATABASE_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": int(env_seconds("DATABASE_KEEPALIVES_IDLE_SECONDS", 30, minimum=1, whole=True)),
    "keepalives_interval": int(env_seconds("DATABASE_KEEPALIVES_INTERVAL_SECONDS", 10, minimum=1, whole=True)),
    "keepalives_count": int(env_seconds("DATABASE_KEEPALIVES_COUNT", 3, minimum=1, whole=True)),
}


# Statement planning (PostgreSQL). Django sends each statement with its parameters inlined (client-side binding), so
# the server parses and plans every execution anew: for the short reads of the API, planning costs more than running.
# Server-side binding sends parameters apart from the SQL, which lets psycopg prepare a statement once it has run
# DATABASE_PREPARE_THRESHOLD times on a connection and then only execute it. Prepared statements live in the server
# session: behind a transaction-mode PgBouncer older than 1.21 (or without max_prepared_statements) a statement
# prepared on one server connection is missing on the next ("prepared statement ... does not exist"): there, set
# DATABASE_PREPARE_THRESHOLD=off (binding alone works through any pooler). README, "Statement planning and poolers".
DATABASE_SERVER_SIDE_BINDING = env_flag("DATABASE_SERVER_SIDE_BINDING", True)
_prepare_threshold = env.str("DATABASE_PREPARE_THRESHOLD", default="2").strip().lower()
if _prepare_threshold != "off" and not _prepare_threshold.isdigit():
    raise ImproperlyConfigured(f"DATABASE_PREPARE_THRESHOLD must be a whole number of executions (0 or more) or 'off', got {_prepare_threshold!r}")
DATABASE_PREPARE_THRESHOLD = None if _prepare_threshold == "off" else int(_prepare_threshold)
if DATABASE_PREPARE_THRESHOLD is not None and not DATABASE_SERVER_SIDE_BINDING:
    raise ImproperlyConfigured(
        "DATABASE_PREPARE_THRESHOLD needs DATABASE_SERVER_SIDE_BINDING=true (psycopg prepares only server-bound statements);"
        " set DATABASE_PREPARE_THRESHOLD=off to bind on the client"
    )
# A connection used less than this many seconds ago is not health-checked again (0: before every request, as Django does).
DATABASE_HEALTH_CHECK_IDLE_SECONDS = env_seconds("DATABASE_HEALTH_CHECK_IDLE_SECONDS", 1)
# What a request that met an unavailable database is told (503 with Retry-After; registry_site.middleware).
DATABASE_RETRY_AFTER_SECONDS = int(env_seconds("DATABASE_RETRY_AFTER_SECONDS", 10, minimum=1, whole=True))


def database_from_url(url: str) -> dict:
    """DATABASES["default"] for a URL, with the timeouts above when it is PostgreSQL."""
    database = env.db_url_config(url)
    database["ATOMIC_REQUESTS"] = False
    database.setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    # A persistent connection is tested (SELECT 1, bounded by the answer timeout) at the first query of each request,
    # so one that died between requests is replaced instead of failing the request; on PostgreSQL only when it has been
    # idle DATABASE_HEALTH_CHECK_IDLE_SECONDS or more (registry_site.postgresql).
    database.setdefault("CONN_HEALTH_CHECKS", True)
    options = database.setdefault("OPTIONS", {})
    if database["ENGINE"] == "django.db.backends.postgresql":
        database["ENGINE"] = "registry_site.postgresql"
        server_options = f"-c statement_timeout={round(DATABASE_STATEMENT_TIMEOUT * 1000)}"
        options.update(
            {
                "connect_timeout": int(DATABASE_CONNECT_TIMEOUT),
                "options": f"{options['options']} {server_options}" if options.get("options") else server_options,
                "answer_timeout": DATABASE_ANSWER_TIMEOUT,
                "server_side_binding": DATABASE_SERVER_SIDE_BINDING,
                "prepare_threshold": DATABASE_PREPARE_THRESHOLD,
                **DATABASE_KEEPALIVES,
            }
        )
    elif database["ENGINE"] == "django.db.backends.sqlite3":
        # WAL lets the worker read while the web process writes; the timeout rides out short write locks.
        options.update({"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE"})
    return database


DATABASES = {"default": database_from_url(env.str("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'registry.sqlite3'}"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# A per-process cache is enough: cached API bodies are keyed by a fingerprint read from the database on every request.
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://registry")}
if CACHES["default"]["BACKEND"].endswith("LocMemCache"):
    # Each version's API JSON is cached on its own (lists of up to 500 share the entries): room for a few thousand.
    CACHES["default"].setdefault("OPTIONS", {}).setdefault("MAX_ENTRIES", 5000)

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out log-in before any password is checked
    "apps.notifications.authentication.UnreadCountBackend",  # ModelBackend + the navigation bar's unread count, in one query
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # no guardian anonymous user: every URL but login and health needs a login
GUARDIAN_RAISE_403 = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "models:list"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Browsers and feed readers ask for /favicon.ico and /apple-touch-icon.png at the site root; WhiteNoise serves them there.
WHITENOISE_ROOT = BASE_DIR / "static" / "img"
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=BASE_DIR / "staticfiles")

# Artifacts: local disk unless an S3 bucket is named. Blobs are addressed by SHA-256, never by a user's path.
ARTIFACT_BUCKET = env.str("ARTIFACT_S3_BUCKET", default="")
ARTIFACT_ROOT = env.path("ARTIFACT_ROOT", default=VAR_DIR / "artifacts")
if ARTIFACT_BUCKET:
    if len(ARTIFACT_BUCKET) < 3:
        raise ImproperlyConfigured("ARTIFACT_S3_BUCKET must be at least 3 characters long")
    ARTIFACT_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": ARTIFACT_BUCKET,
            "endpoint_url": env.str("ARTIFACT_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("ARTIFACT_S3_REGION", default="") or None,
            "access_key": env.str("ARTIFACT_S3_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("ARTIFACT_S3_SECRET_ACCESS_KEY", default="") or None,
            "addressing_style": env.str("ARTIFACT_S3_ADDRESSING_STYLE", default="") or None,
            "location": env.str("ARTIFACT_S3_PREFIX", default=""),
            "file_overwrite": True,  # content-addressed: the same key always holds the same bytes
            "default_acl": None,
            "querystring_auth": True,
            "signature_version": "s3v4",
            "querystring_expire": env.int("ARTIFACT_S3_URL_EXPIRY_SECONDS", default=300),
        },
    }
else:
    ARTIFACT_STORAGE = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": ARTIFACT_ROOT, "base_url": None},
    }

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": VAR_DIR / "media"}},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "artifacts": ARTIFACT_STORAGE,
}

# Uploads always go to a temporary file through a handler that hashes as it writes: memory stays flat.
FILE_UPLOAD_HANDLERS = ["apps.versions.uploads.HashingUploadHandler"]
# With artifacts on local disk, uploads spool next to them so storing a blob is a rename, not a second copy.
FILE_UPLOAD_TEMP_DIR = env.str("FILE_UPLOAD_TEMP_DIR", default="") or (None if ARTIFACT_BUCKET else str(Path(ARTIFACT_ROOT) / "uploads"))
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024  # non-file fields (the metadata JSON) together
DATA_UPLOAD_MAX_NUMBER_FIELDS = 2000
DATA_UPLOAD_MAX_NUMBER_FILES = 1000
ARTIFACT_MAX_FILE_BYTES = env_bytes("ARTIFACT_MAX_FILE_BYTES", 50 * 1024**3)
METADATA_MAX_BYTES = env_bytes("METADATA_MAX_BYTES", 256 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "apps.accounts.parsers.CheckedJSONParser",
        "apps.accounts.parsers.CheckedMultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "apps.web.errors.json_error_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # The one paginator of every API list (apps.web.lists.paginated); `page` and `page_size` are its parameters.
    "DEFAULT_PAGINATION_CLASS": "apps.web.pagination.Pages",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
# The OpenAPI schema (/api/v1/schema/) and its docs pages (/api/v1/docs/): login required like the rest of the API;
# Swagger UI and Redoc are served from static files (drf-spectacular-sidecar), never from a CDN.
SPECTACULAR_SETTINGS = {
    "TITLE": "Model registry API",
    "DESCRIPTION": (
        "Register model versions, move them through stages with approvals, and read what serves production. "
        'Every error is JSON: {"error": {"code", "message", "fields"?}}.'
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # No deep links: Swagger UI puts each one, a link, inside the operation's expand button (nested controls, WCAG 4.1.2).
    "SWAGGER_UI_SETTINGS": {"deepLinking": False},
    "REDOC_DIST": "SIDECAR",
}
# Idempotency-Key (apps.accounts.idempotency): how long an answer is kept for retries, and the Retry-After of a 409
# to a retry that arrives while its first request is still running.
IDEMPOTENCY_KEY_HOURS = _env_positive_int("IDEMPOTENCY_KEY_HOURS", 24)
IDEMPOTENCY_RETRY_AFTER_SECONDS = _env_positive_int("IDEMPOTENCY_RETRY_AFTER_SECONDS", 2)

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="registry")
CELERY_BROKER_CONNECTION_TIMEOUT = 3
# The broker is never waited for (registry_site.broker): a publish is one attempt (max_retries 0: no kombu connection
# retries) bounded by the socket timeouts below, and after a failure a process skips publishing for the pause (doubled
# while failures go on, at most a minute); the sweeps resend. The socket timeout must outlast the 1 s BRPOP workers
# block in. Workers themselves reconnect for as long as it takes, from start-up on.
BROKER_CONNECT_TIMEOUT_SECONDS = env_seconds("BROKER_CONNECT_TIMEOUT_SECONDS", 1, minimum=0.1)
BROKER_SOCKET_TIMEOUT_SECONDS = env_seconds("BROKER_SOCKET_TIMEOUT_SECONDS", 2, minimum=1.5)
BROKER_PUBLISH_PAUSE_SECONDS = env_seconds("BROKER_PUBLISH_PAUSE_SECONDS", 5)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "max_retries": 0,
    "socket_connect_timeout": BROKER_CONNECT_TIMEOUT_SECONDS,
    "socket_timeout": BROKER_SOCKET_TIMEOUT_SECONDS,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
if CELERY_BROKER_URL.startswith("redis://"):
    CELERY_BROKER_TRANSPORT = "registry_site.broker:RedisTransport"  # a worker survives a broker restart (see that module)
CELERY_BEAT_SCHEDULE = {
    "sweep-validation-jobs": {"task": "apps.validation.tasks.sweep_validation_jobs", "schedule": env.float("VALIDATION_SWEEP_SECONDS", default=30.0)},
    "sweep-webhook-deliveries": {"task": "apps.events.tasks.sweep_webhook_deliveries", "schedule": env.float("WEBHOOK_SWEEP_SECONDS", default=15.0)},
    "collect-artifact-garbage": {"task": "apps.versions.tasks.collect_artifact_garbage", "schedule": env.float("ARTIFACT_GC_SECONDS", default=3600.0)},
    "purge-idempotency-records": {"task": "apps.accounts.tasks.purge_idempotency_records", "schedule": 3600.0},
    "sweep-notification-emails": {"task": "apps.notifications.tasks.sweep_notification_emails", "schedule": env.float("NOTIFICATION_SWEEP_SECONDS", default=30.0)},
}

# Validation jobs: a running job whose heartbeat is older than the lease is taken over by the sweep.
VALIDATION_LEASE_SECONDS = env.int("VALIDATION_LEASE_SECONDS", default=120)
VALIDATION_RESEND_AFTER_SECONDS = env.int("VALIDATION_RESEND_AFTER_SECONDS", default=60)
VALIDATION_READ_BYTES_PER_SECOND = env.int("VALIDATION_READ_BYTES_PER_SECOND", default=0) or None  # 0: no limit
# The unsafe-serialization scan reads compressed streams and archive members with these caps; passing one is a finding.
VALIDATION_PICKLE_MAX_BYTES = env_bytes("VALIDATION_PICKLE_MAX_BYTES", 8 * 1024**3)  # decompressed per artifact
VALIDATION_PICKLE_MAX_RATIO = env_bytes("VALIDATION_PICKLE_MAX_RATIO", 200)  # output bytes per input byte of one stream
VALIDATION_PICKLE_MAX_DEPTH = env_bytes("VALIDATION_PICKLE_MAX_DEPTH", 4)  # containers inside containers
# Time limits. Each check stops at its budget (its verdict is `error`); a job stops at its hard limit (`error` with the
# reason, not retried). Celery's limits back these up for code that does not check its budget: the soft one is recorded
# like the job's hard limit; at the hard one the pool child is killed and the job recorded. A job is tried at most
# VALIDATION_MAX_ATTEMPTS times (a worker that died counts); then the sweep records it as `error` and stops resending it.
def _soft_and_hard_limits(prefix: str, soft_default: int) -> tuple[int, int]:
    """<prefix>SOFT_TIME_LIMIT and <prefix>TIME_LIMIT (default: a minute more). Celery's prefork pool arms the hard
    limit only when the soft one fires, so the soft one must be the shorter."""
    soft = _env_positive_int(f"{prefix}SOFT_TIME_LIMIT", soft_default)
    hard = _env_positive_int(f"{prefix}TIME_LIMIT", soft + 60)
    if soft >= hard:
        raise ImproperlyConfigured(f"{prefix}SOFT_TIME_LIMIT must be less than {prefix}TIME_LIMIT, got {soft} and {hard}")
    return soft, hard


VALIDATION_CHECK_BUDGET_SECONDS = _env_positive_int("VALIDATION_CHECK_BUDGET_SECONDS", 300)
VALIDATION_JOB_HARD_LIMIT_SECONDS = _env_positive_int("VALIDATION_JOB_HARD_LIMIT_SECONDS", 900)
VALIDATION_TASK_SOFT_TIME_LIMIT, VALIDATION_TASK_TIME_LIMIT = _soft_and_hard_limits("VALIDATION_TASK_", VALIDATION_JOB_HARD_LIMIT_SECONDS + 30)
VALIDATION_MAX_ATTEMPTS = _env_positive_int("VALIDATION_MAX_ATTEMPTS", 3)
VALIDATION_SAFETENSORS_MAX_HEADER_BYTES = env_bytes("VALIDATION_SAFETENSORS_MAX_HEADER_BYTES", 16 * 1024 * 1024)
# Manifest signing (apps.signing): the active Ed25519 private key (PEM, PKCS#8) and earlier keys (PEM files, public
# halves suffice) still published so their signatures verify. Without an active key nothing is signed (and
# `manage.py check --deploy` warns). A key file that cannot be used stops start-up, naming the variable.
MANIFEST_SIGNING_KEY_FILE = env.str("MANIFEST_SIGNING_KEY_FILE", default="")
MANIFEST_RETIRED_KEY_FILES = env.list("MANIFEST_RETIRED_KEY_FILES", default=[])


def _check_signing_keys() -> None:
    if not (MANIFEST_SIGNING_KEY_FILE or MANIFEST_RETIRED_KEY_FILES):
        return
    from apps.signing.keys import KeyFileError, read_key_file

    for name, paths, private in (("MANIFEST_SIGNING_KEY_FILE", [MANIFEST_SIGNING_KEY_FILE] if MANIFEST_SIGNING_KEY_FILE else [], True),
                                 ("MANIFEST_RETIRED_KEY_FILES", MANIFEST_RETIRED_KEY_FILES, False)):
        for path in paths:
            try:
                read_key_file(path, private=private)
            except KeyFileError as exc:
                raise ImproperlyConfigured(f"{name}: {exc}") from exc


_check_signing_keys()
# Bytes format inspection reads of one ONNX file to find its opsets, inputs and outputs (weights are skipped, not read).
VALIDATION_ONNX_MAX_READ_BYTES = env_bytes("VALIDATION_ONNX_MAX_READ_BYTES", 64 * 1024 * 1024)
# Every other task (webhook deliveries, sweeps) runs under CELERY_TASK_SOFT_TIME_LIMIT and CELERY_TASK_TIME_LIMIT.
CELERY_TASK_SOFT_TIME_LIMIT, CELERY_TASK_TIME_LIMIT = _soft_and_hard_limits("CELERY_TASK_", 120)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = False
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS |= {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# Webhooks (apps.events). Receivers on loopback, private, link-local or metadata addresses are refused unless listed
# here (host names, addresses or networks, comma-separated). Failed deliveries are retried after 10 s, 20 s, 40 s, ...
# (capped) until WEBHOOK_MAX_ATTEMPTS; an attempt in flight longer than the lease is taken over by the sweep.
WEBHOOK_ALLOWED_INTERNAL_HOSTS = env.list("WEBHOOK_ALLOWED_INTERNAL_HOSTS", default=[])
# How long a receiver has to answer one delivery, connecting included; past it the attempt fails and is retried. Shorter
# than the lease, or the sweep would hand a slow attempt to a second worker while the first still waits.
WEBHOOK_TIMEOUT_SECONDS = _env_positive_int("WEBHOOK_TIMEOUT_SECONDS", 30)
globals().update(_outbox_settings("WEBHOOK", max_attempts=8, retry_base_seconds=10, timeout=("WEBHOOK_TIMEOUT_SECONDS", WEBHOOK_TIMEOUT_SECONDS)))

# Artifact cleanup (`manage.py gc_artifact_blobs` and the periodic task above, ARTIFACT_GC_SECONDS apart). Blobs that no
# version uses and no registration reserves go once older than ARTIFACT_GC_GRACE_MINUTES. A registration reserves its
# blobs for BLOB_RESERVATION_SECONDS, longer than storing its files may take; one that takes longer answers 503.
# Upload spool files that no live process writes go once untouched for UPLOAD_SPOOL_GRACE_MINUTES.
ARTIFACT_GC_GRACE_MINUTES = _env_positive_int("ARTIFACT_GC_GRACE_MINUTES", 60)
BLOB_RESERVATION_SECONDS = _env_positive_int("BLOB_RESERVATION_SECONDS", 12 * 3600)
UPLOAD_SPOOL_GRACE_MINUTES = _env_positive_int("UPLOAD_SPOOL_GRACE_MINUTES", 360)
# Files uploaded through the MLflow artifact endpoint that no version uses yet are kept this long after their upload
# (their blob reservation), then swept with the unused blobs (apps.mlflow_api.models.StagedArtifact).
MLFLOW_UPLOAD_HOURS = _env_positive_int("MLFLOW_UPLOAD_HOURS", 24)
# Upload sessions (apps.versions.upload_sessions): how long one may be resumed before the cleanup removes it and what it
# left; the part size of uploads (S3 parts, and the size clients send per request); how long a presigned part URL lasts.
UPLOAD_SESSION_HOURS = _env_positive_int("UPLOAD_SESSION_HOURS", 24)
UPLOAD_PART_BYTES = env_bytes("UPLOAD_PART_BYTES", 16 * 1024 * 1024)
if UPLOAD_PART_BYTES < 5 * 1024 * 1024:
    raise ImproperlyConfigured(f"UPLOAD_PART_BYTES must be at least 5 MiB (S3's smallest part), got {UPLOAD_PART_BYTES}")
UPLOAD_PART_URL_EXPIRY_SECONDS = _env_positive_int("UPLOAD_PART_URL_EXPIRY_SECONDS", 3600)

# Log-in throttling (django-axes, attempts in the database so every worker sees them). Failures are counted per
# username and per client address; at LOGIN_FAILURE_LIMIT within the cool-off, log-ins for that username, or from that
# address, are refused (even with the right password) until LOGIN_COOLOFF_MINUTES after the last failure. A success
# does not wipe the count: with a reset, an attacker holding any account could clear an address's count by logging in.
# Administrators see and clear lockouts under Admin > Axes, or with `manage.py axes_reset_username <name>`.
AXES_ENABLED = env_flag("LOGIN_THROTTLING", True)
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = _env_positive_int("LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=_env_positive_int("LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = False
AXES_LOCKOUT_CALLABLE = "apps.accounts.views.login_locked_out"
# The client address, for log-ins and API tokens alike (apps.accounts.authentication.client_address): REMOTE_ADDR, or
# behind TRUSTED_PROXY_COUNT reverse proxies that each append to X-Forwarded-For, the address the outermost one saw.
# Never trust the header without such proxies: every request could claim a new address.
AXES_CLIENT_IP_CALLABLE = "apps.accounts.authentication.client_address"
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured(f"TRUSTED_PROXY_COUNT must be 0 or more, got {TRUSTED_PROXY_COUNT}")
# API tokens (apps.accounts.authentication): API_TOKEN_FAILURE_LIMIT failed tokens from one address within the cool-off
# block that address's token requests with 429 and Retry-After for API_TOKEN_COOLOFF_SECONDS. Counted in the cache
# (CACHES): per process with the default local-memory cache; set CACHE_URL to Redis to share the count between workers.
API_TOKEN_FAILURE_LIMIT = _env_positive_int("API_TOKEN_FAILURE_LIMIT", 20)
API_TOKEN_COOLOFF_SECONDS = _env_positive_int("API_TOKEN_COOLOFF_SECONDS", 900)
# Each web process remembers a token it accepted (its user, scope, expiry and model limit; never a permission) for this
# many seconds, so an API call costs one database round trip instead of two. A token revoked, or a user deactivated, in
# one process is refused there at once and by the other processes within this window; 0 looks every token up on every
# request. Expiry is checked on every request from the remembered value. README, "API tokens".
API_TOKEN_CACHE_SECONDS = env_seconds("API_TOKEN_CACHE_SECONDS", 10)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# Notification emails (apps.notifications), sent by the workers through Django's email framework. EMAIL_URL picks the
# backend: consolemail:// (the default: printed by the worker), filemail:///var/mail (one file per email; a relative
# path is under the project folder, filemail:////abs/path an absolute one), smtp://user:password@host:587 (smtp+tls://,
# smtp+ssl://; user and password URL-encoded). SITE_URL is the dashboard's address, for the links in the emails.
def _email_settings() -> dict:
    raw = env.str("EMAIL_URL", default="consolemail://")
    try:
        config = environ.Env.email_url_config(raw)
    except ImproperlyConfigured as exc:
        raise ImproperlyConfigured(f"EMAIL_URL: {exc}; use consolemail://, filemail:///path or smtp://user:password@host:port") from exc
    if config["EMAIL_BACKEND"].endswith("filebased.EmailBackend"):
        if not config["EMAIL_FILE_PATH"]:
            raise ImproperlyConfigured("EMAIL_URL: filemail:// needs a folder, e.g. filemail:///var/mail")
        config["EMAIL_FILE_PATH"] = str(BASE_DIR / config["EMAIL_FILE_PATH"])  # an absolute path stays itself
    return {key: value for key, value in config.items() if value not in (None, "") and key != "OPTIONS"}


globals().update(_email_settings())
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Model Registry <registry@localhost>")
EMAIL_TIMEOUT = _env_positive_int("EMAIL_TIMEOUT_SECONDS", 30)
# A notification email that fails is retried after 30 s, 60 s, ... (at most an hour apart) until the last attempt, then
# given up (shown in the admin and on the page); an attempt in flight longer than the lease is taken back by the sweep.
globals().update(_outbox_settings("NOTIFICATION_EMAIL", max_attempts=6, retry_base_seconds=30, timeout=("EMAIL_TIMEOUT_SECONDS", EMAIL_TIMEOUT)))
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
if not SITE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"SITE_URL must start with http:// or https://, got {SITE_URL!r}")
