"""Lethe settings: one 12-factor module, configured only through environment variables.

With no environment at all Lethe runs embedded: SQLite in ``var/``, artifacts in
``var/artifacts`` and no external broker. Production differences are environment flags,
never extra settings files (DESIGN §8, STYLE §3.10). This is the only module that reads
the environment; importing it creates nothing on disk (the commands that start things
create the folders: governance/apps.py ``local_folders_create``).

Logging and scheduling variables (the others are described where they are read below):

- ``LETHE_LOG_FORMAT``: ``text`` (default, for people) or ``json`` (one JSON object per
  line with time, level, logger, message and exc_info, for log collectors).
- ``LETHE_LOG_LEVEL``: the root logger's level, ``INFO`` by default (a Celery worker's
  ``--loglevel`` sets its own).
- ``LETHE_RETRAIN_INTERVAL_S``: seconds between scheduled-retraining checks (3600).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import django_stubs_ext
from csp.constants import NONE as CSP_NONE
from csp.constants import SELF as CSP_SELF
from django.core.exceptions import ImproperlyConfigured

from governance.secret_key import secret_key_lazy
from governance.setting_database import database_from_url, sqlite_database
from governance.setting_env import envbool, envfloat, envint, envpath, envsecret, envstr
from governance.setting_values import (
    artifacts_storage,
    cache_from_url,
    proxy_ssl_header,
    throttle_rate,
)

django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent


def parse_database_url(url: str) -> dict[str, Any]:
    """DATABASES["default"] from DATABASE_URL (governance/setting_database.py)."""
    return database_from_url(
        url,
        base_dir=BASE_DIR,
        conn_max_age=envint("CONN_MAX_AGE", 0),
        prepare=envstr("DATABASE_PREPARE_THRESHOLD", ""),
    )


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


# --- Core -----------------------------------------------------------------------------

# Off unless asked for: `manage.py demo`, `serve` and `runserver` (the embedded entry
# points) set DEBUG=true when it is unset (manage.py); gunicorn, workers and tests run
# with it off. DEBUG pages show settings and tracebacks to whoever asks.
DEBUG = envbool("DEBUG", default=False)

# No known development key: without SECRET_KEY every process of this installation shares
# a random key file made on first use (governance/secret_key.py). Several machines: set it.
SECRET_KEY = envsecret("SECRET_KEY") or secret_key_lazy(
    envpath("LETHE_SECRET_KEY_PATH", BASE_DIR / "var" / "keys" / "django-secret.key")
)

ALLOWED_HOSTS = _split(envstr("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]"))
CSRF_TRUSTED_ORIGINS = _split(envstr("CSRF_TRUSTED_ORIGINS", ""))
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = envbool("SECURE_COOKIES", default=not DEBUG)

# --- Security (docs/operations.md "Security settings") ---------------------------------

# TLS ends at the proxy in front of gunicorn. SECURE_PROXY_SSL_HEADER ("X-Forwarded-Proto:
# https") only behind a proxy that overwrites that header, or a client can claim HTTPS.
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", default=False)
# Load balancers probe health over plain HTTP, straight to gunicorn: no redirect there.
SECURE_REDIRECT_EXEMPT = [r"^api/v1/health/$"]
SECURE_PROXY_SSL_HEADER = proxy_ssl_header(envstr("SECURE_PROXY_SSL_HEADER", None))
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", default=False)
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Proxies that append to X-Forwarded-For (0: clients connect directly). Lockouts and
# throttles count per client address: with N proxies, the Nth from the right of that list.
LETHE_TRUSTED_PROXY_COUNT = envint("LETHE_TRUSTED_PROXY_COUNT", 0)

# The UI's one script and stylesheet are static files: no inline code or style is allowed,
# so an injected <script> or style attribute does not run. JSON and PDFs carry it too.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [CSP_NONE],
        "script-src": [CSP_SELF],
        "style-src": [CSP_SELF],
        "img-src": [CSP_SELF, "data:"],
        "font-src": [CSP_SELF],
        "connect-src": [CSP_SELF],
        "form-action": [CSP_SELF],
        "frame-ancestors": [CSP_NONE],
        "base-uri": [CSP_NONE],
        "object-src": [CSP_NONE],
    }
}

# Login protection (django-axes): after this many failed web sign-ins for one username
# from one address, that pair is refused for the cool-off time. Each failure and each
# lockout is in the audit trail (governance/services/logins.py).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = envint("LETHE_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=envint("LETHE_LOGIN_COOLOFF_MINUTES", 15))
# Username and address together: an attacker elsewhere cannot lock an officer out.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "governance.web_security.client_ip"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False  # its start-up banner on every command; failures still log a warning

# API throttling (DRF), per client address without a token and per user with one: N/second,
# N/minute, N/hour, N/day or "off"; the user default lets one token sustain 100 requests/s.
_ANON, _USER = "LETHE_API_THROTTLE_ANON", "LETHE_API_THROTTLE_USER"
LETHE_API_THROTTLE_ANON = throttle_rate(_ANON, envstr(_ANON, "1200/minute"))
LETHE_API_THROTTLE_USER = throttle_rate(_USER, envstr(_USER, "6000/minute"))
# CACHE_URL: redis://host:port/db (RedisCache), or unset for a per-process memory cache. It
# holds the throttle counts: share it across gunicorn workers, or each process counts alone.
CACHES = {"default": cache_from_url(envsecret("CACHE_URL"))}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_celery_beat",
    "axes",
    "csp",
    "governance",
]

MIDDLEWARE = [
    # First: every response, redirects and errors included, carries X-Request-ID.
    "governance.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # After WhiteNoise, so only what Django answers is marked no-store, not static files.
    "governance.web_security.NoStoreMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a refused sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "governance.urls"
WSGI_APPLICATION = "governance.wsgi.application"

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
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------

_database_url = envsecret("DATABASE_URL")
DATABASES = {
    "default": parse_database_url(_database_url)
    if _database_url
    else sqlite_database(BASE_DIR / "var" / "lethe.sqlite3", {})
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# The web UI signs people in with Django's session login (API clients use tokens).
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "web-dashboard"
LOGOUT_REDIRECT_URL = "login"

# --- Time and language: UTC only (STYLE §3.17) ----------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Files ----------------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = envpath("STATIC_ROOT", BASE_DIR / "var" / "static")
# WhiteNoise serves what collectstatic put here, and the apps' own static folders too
# (finders, read once at start-up), so gunicorn on a fresh clone has its CSS with DEBUG off.
WHITENOISE_USE_FINDERS = True
# Trained stages, manifests and certificates; the engine creates folders as it writes.
ARTIFACT_ROOT = envpath("ARTIFACT_ROOT", BASE_DIR / "var" / "artifacts")

# Stage files live in STORAGES["artifacts"] under object keys (governance/artifacts.py):
# a local folder (ARTIFACT_ROOT) by default, one machine; an S3-compatible bucket shared by
# every machine of a deployment when LETHE_ARTIFACTS_S3_BUCKET is set. AWS_ACCESS_KEY_ID
# and AWS_SECRET_ACCESS_KEY come from the environment as boto3 reads them.
LETHE_ARTIFACTS_S3_BUCKET = envstr("LETHE_ARTIFACTS_S3_BUCKET", None)
LETHE_ARTIFACTS_S3_ENDPOINT_URL = envstr("LETHE_ARTIFACTS_S3_ENDPOINT_URL", None)
LETHE_ARTIFACTS_S3_PREFIX = envstr("LETHE_ARTIFACTS_S3_PREFIX", "").strip("/")
LETHE_ARTIFACTS_S3_REGION = envstr("LETHE_ARTIFACTS_S3_REGION", None)
# Many machines share this deployment's state: every key (signing, audit, SECRET_KEY) must
# then come from configuration, never from a file one machine creates for itself.
LETHE_SHARED_DEPLOYMENT = bool(LETHE_ARTIFACTS_S3_BUCKET) or envbool(
    "LETHE_SHARED_DEPLOYMENT", default=False
)
# Each process's read-through cache of stage files (bounded, least recently used first out);
# used when the store is remote. 0 turns it off.
LETHE_ARTIFACT_CACHE_DIR = envpath(
    "LETHE_ARTIFACT_CACHE_DIR", BASE_DIR / "var" / "cache" / "stages"
)
LETHE_ARTIFACT_CACHE_MAX_BYTES = envint("LETHE_ARTIFACT_CACHE_MAX_BYTES", 2 * 1024**3)


STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "artifacts": artifacts_storage(
        bucket=LETHE_ARTIFACTS_S3_BUCKET,
        endpoint_url=LETHE_ARTIFACTS_S3_ENDPOINT_URL,
        region=LETHE_ARTIFACTS_S3_REGION,
        prefix=LETHE_ARTIFACTS_S3_PREFIX,
    ),
}

# --- REST API -------------------------------------------------------------------------

REST_FRAMEWORK = {
    # The OpenAPI document as validation behaves (governance/api/common.py).
    "DEFAULT_SCHEMA_CLASS": "governance.api.common.LetheAutoSchema",
    # Token first: its `WWW-Authenticate: Token` makes DRF answer 401, not 403, to a
    # request without credentials. Sessions serve the web UI (and enforce CSRF).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "governance.api.authentication.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Closed by default: an endpoint that forgets its permission check stays private.
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only; the records endpoint adds JSONL, CSV and uploads (INGEST_PARSER_CLASSES).
    "DEFAULT_PARSER_CLASSES": ["governance.api.ingest.JSONParser"],
    "EXCEPTION_HANDLER": "governance.errors.api_exception_handler",
    # Throttled answers 429 with Retry-After, in the error envelope (governance.errors).
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {"anon": LETHE_API_THROTTLE_ANON, "user": LETHE_API_THROTTLE_USER},
    "NUM_PROXIES": LETHE_TRUSTED_PROXY_COUNT,
}

# One limit for every request body and upload (the ingest parsers check it for JSONL, CSV
# and multipart files, which Django alone would not); over it the API answers 413.
LETHE_MAX_UPLOAD_BYTES = envint("LETHE_MAX_UPLOAD_BYTES", 32 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = LETHE_MAX_UPLOAD_BYTES
# Rows per bulk records request: bounds one upsert transaction.
LETHE_MAX_BATCH_ROWS = envint("LETHE_MAX_BATCH_ROWS", 100_000)
# One image record (docs/tasks.md): its file size, and its width × height, checked at
# ingest before any pixel is decompressed.
LETHE_IMAGE_MAX_BYTES = envint("LETHE_IMAGE_MAX_BYTES", 5 * 1024 * 1024)
LETHE_IMAGE_MAX_PIXELS = envint("LETHE_IMAGE_MAX_PIXELS", 16_000_000)
# Requests in one record-keeping report (API export and page): a longer period is a 400.
LETHE_REPORT_MAX_ROWS = envint("LETHE_REPORT_MAX_ROWS", 100_000)

SPECTACULAR_SETTINGS = {
    "TITLE": "Lethe API",
    "DESCRIPTION": "Exact machine unlearning with lineage, erasure requests and certificates.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Health's three checks share one up/down enum.
    "ENUM_NAME_OVERRIDES": {"UpDownEnum": "governance.api.health.UP_DOWN"},
}

# --- Celery (read by celery_worker.celery with the CELERY_ namespace) -----------------

# None means embedded mode: no external broker, the demo's own background worker runs
# the jobs. Production points this at Redis or RabbitMQ.
CELERY_BROKER_URL = envsecret("CELERY_BROKER_URL")
# Embedded mode: Celery's file-system transport, a real broker-less queue in var/broker
# that the local worker process polls. No server to run, nothing to configure.
LETHE_BROKER_DIR = envpath("LETHE_BROKER_DIR", BASE_DIR / "var" / "broker")
if CELERY_BROKER_URL is None:
    CELERY_BROKER_URL = "filesystem://"
    # kombu's file-system transport, writing each message atomically (see the module).
    CELERY_BROKER_TRANSPORT = "celery_worker.filesystem_transport:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(LETHE_BROKER_DIR / "queue"),
        "data_folder_out": str(LETHE_BROKER_DIR / "queue"),
        "processed_folder": str(LETHE_BROKER_DIR / "processed"),
        "control_folder": str(LETHE_BROKER_DIR / "control"),
        "store_processed": False,
        # How often a worker looks for new messages (kombu's default is 1 s): an approved
        # erasure waits up to this long before the worker sees it (bench_embedded.py). A
        # look is one listing of the queue folder: an idle worker used 0.14 CPU-seconds per
        # 30 s at 0.05 s (0.5 % of a core) against 0.03 at 1 s.
        "polling_interval": envfloat("LETHE_BROKER_POLL_SECONDS", 0.05),
    }
else:
    # Redis redelivers an unacknowledged message after this long; training tasks run for
    # minutes to hours, and a redelivered duplicate is harmless (stages are claimed).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": envint("BROKER_VISIBILITY_S", 7200)}
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_IGNORE_RESULT = True  # state lives in the database, not in a result backend
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Tests that want tasks to run inline say so; the default is a real worker.
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
# A stage's claim; a worker renews it while training, so a dead worker's claim lapses.
LETHE_STAGE_LEASE_SECONDS = envint("LETHE_STAGE_LEASE_SECONDS", 600)
CELERY_RESULT_BACKEND = envsecret("CELERY_RESULT_BACKEND")
# JSON only: a pickle payload from the broker would be code execution.
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
# Training tasks run for minutes: a worker should not hoard queued jobs it cannot start.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Workers and health (docs/operations.md): each worker writes a heartbeat row this often;
# /api/v1/health/ counts a worker down when its row is older than the stale age.
# `manage.py worker` restarts a control worker that dies, at most this many times within
# the window (backoff 1 s, 2 s, 4 s ... 30 s), then exits non-zero for its supervisor.
LETHE_WORKER_HEARTBEAT_S = envint("LETHE_WORKER_HEARTBEAT_S", 10)
LETHE_WORKER_STALE_S = envint("LETHE_WORKER_STALE_S", 30)
LETHE_WORKER_MAX_RESTARTS = envint("LETHE_WORKER_MAX_RESTARTS", 5)
LETHE_WORKER_RESTART_WINDOW_S = envint("LETHE_WORKER_RESTART_WINDOW_S", 300)
# Erasures: requests from integration accounts skip the officer's approval when set (a
# data platform that has already verified the subject); the sweeper re-queues requests
# stuck in approved/executing for longer than this.
LETHE_AUTO_APPROVE_INTEGRATION = envbool("LETHE_AUTO_APPROVE_INTEGRATION", default=False)
LETHE_ERASURE_STUCK_SECONDS = envint("LETHE_ERASURE_STUCK_SECONDS", 120)
# Four eyes: an officer may not approve a request they filed themselves; another officer
# must (ErasureRequest.approval_refusal). Off by default: a one-officer team could not work.
LETHE_FOUR_EYES = envbool("LETHE_FOUR_EYES", default=False)
# Ed25519 key that signs deletion certificates (governance/certificates/signing.py): the
# PEM text in LETHE_SIGNING_KEY, else the PEM file LETHE_SIGNING_KEY_FILE names (never
# created by Lethe), the same on every machine; else (embedded default only) a file
# created (mode 0600) at LETHE_SIGNING_KEY_PATH on first use. Back it up: certificates
# name its key id.
LETHE_SIGNING_KEY = envstr("LETHE_SIGNING_KEY", None)
LETHE_SIGNING_KEY_FILE = envstr("LETHE_SIGNING_KEY_FILE", None)
LETHE_SIGNING_KEY_PATH = envpath(
    "LETHE_SIGNING_KEY_PATH", BASE_DIR / "var" / "keys" / "signing-ed25519.pem"
)
# The audit trail's HMAC key (governance/audit_key.py): at least 32 characters, the same
# on every machine; without it a random key file is created (0600) at the path on first use.
LETHE_AUDIT_KEY = envsecret("LETHE_AUDIT_KEY")
LETHE_AUDIT_KEY_PATH = envpath("LETHE_AUDIT_KEY_PATH", BASE_DIR / "var" / "keys" / "audit-hmac.key")
# Beat: how often the trail's head is signed as a checkpoint (also at every certificate).
LETHE_AUDIT_CHECKPOINT_INTERVAL_S = envint("LETHE_AUDIT_CHECKPOINT_INTERVAL_S", 300)
# Local Hugging Face checkpoints a model may name as base_model (besides packaged ones).
LETHE_MODEL_ROOT = envpath("LETHE_MODEL_ROOT", BASE_DIR / "var" / "models")
# Threads for torch in processes that train or serve; 0 means one per core.
LETHE_TORCH_THREADS = envint("LETHE_TORCH_THREADS", 0)
# Where hosts train and serve: auto (CUDA if any), cpu, cuda, cuda:N (worker --device sets it).
LETHE_DEVICE = envstr("LETHE_DEVICE", "auto")
# Loaded hosts per process, least recently used out (never one in use): by count and bytes.
LETHE_HOST_POOL_MAX_HOSTS = max(1, envint("LETHE_HOST_POOL_MAX_HOSTS", 4))
LETHE_HOST_POOL_MAX_BYTES = envint("LETHE_HOST_POOL_MAX_BYTES", 4 * 1024**3)
# Beat: how often schedule_retraining looks for shards serving below their threshold.
LETHE_RETRAIN_INTERVAL_S = envint("LETHE_RETRAIN_INTERVAL_S", 3600)
# Webhooks (docs/webhooks.md): hosts allowed over http and at private addresses; attempt
# timeout; disabled after failing this long; reminders to confirm an erasure (Art. 19).
LETHE_WEBHOOK_ALLOWED_HOSTS = _split(envstr("LETHE_WEBHOOK_ALLOWED_HOSTS", ""))
LETHE_WEBHOOK_TIMEOUT_S = envint("LETHE_WEBHOOK_TIMEOUT_S", 10)
LETHE_WEBHOOK_DISABLE_AFTER_S = envint("LETHE_WEBHOOK_DISABLE_AFTER_S", 3 * 86400)
LETHE_CONFIRMATION_REMINDER_S = envint("LETHE_CONFIRMATION_REMINDER_S", 86400)
LETHE_OPENLINEAGE_URL = envstr("LETHE_OPENLINEAGE_URL", None)  # docs/openlineage.md
LETHE_OPENLINEAGE_NAMESPACE = envstr("LETHE_OPENLINEAGE_NAMESPACE", None)

# --- Logging ----------------------------------------------------------------------------

LETHE_LOG_FORMAT = envstr("LETHE_LOG_FORMAT", "text").lower()
if LETHE_LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LETHE_LOG_FORMAT={LETHE_LOG_FORMAT!r}: use text or json")
LETHE_LOG_LEVEL = envstr("LETHE_LOG_LEVEL", "INFO").upper()
if LETHE_LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(
        f"LETHE_LOG_LEVEL={LETHE_LOG_LEVEL!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL"
    )
_LOG_FORMATTERS: dict[str, dict[str, str]] = {
    "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"},
    "json": {"()": "governance.log.JsonLinesFormatter"},
    # Django's own format for runserver's request lines ([time] "GET / HTTP/1.1" 200 35).
    "django.server": {
        "()": "django.utils.log.ServerFormatter",
        "format": "[{server_time}] {message}",
        "style": "{",
    },
}
# Request lines stay in Django's format as text and become JSON lines with the rest.
_SERVER_FORMAT = "django.server" if LETHE_LOG_FORMAT == "text" else LETHE_LOG_FORMAT
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {name: _LOG_FORMATTERS[name] for name in {LETHE_LOG_FORMAT, _SERVER_FORMAT}},
    # request_id on every record, so a 5xx's traceback is found by the id in its answer.
    "filters": {"request_id": {"()": "governance.middleware.RequestIdFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LETHE_LOG_FORMAT,
            "filters": ["request_id"],
        },
        "server": {
            "class": "logging.StreamHandler",
            "formatter": _SERVER_FORMAT,
            "filters": ["request_id"],
        },
    },
    "root": {"handlers": ["console"], "level": LETHE_LOG_LEVEL},
    "loggers": {
        # Django's own console handler would print its records a second time. Configuring
        # "django" resets its children, so runserver's logger is configured again below.
        "django": {"handlers": [], "propagate": True},
        "django.server": {"handlers": ["server"], "level": "INFO", "propagate": False},
        # Celery gives a task logger without a handler its own plain-text one.
        "celery.task": {"handlers": ["console"], "propagate": False},
    },
}
if CELERY_BROKER_URL == "filesystem://":
    # kombu warns that the embedded file-system broker's URL names no host, on every start.
    LOGGING["loggers"]["kombu.connection"] = {"level": "ERROR"}
