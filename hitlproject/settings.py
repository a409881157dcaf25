"""Settings for the HITL workflow project, read from the environment.

Without any environment the project runs embedded: SQLite (WAL, IMMEDIATE transactions),
django-q2's ORM broker and an in-process channel layer. ``DATABASE_URL`` switches to
PostgreSQL, ``REDIS_URL`` to the Redis broker, channel layer and cache. Production deployments
use ``hitlproject.settings_production``, which refuses insecure defaults.
"""

import warnings
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from hitlproject import process

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A .env file is optional; real environment variables win over it.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DATA_DIR = Path(env.str("HITL_DATA_DIR", default=str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default="django-insecure-local-development-only-key-0123456789")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # daphne first so that `runserver` serves ASGI (HTTP + WebSockets) in development.
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "channels",
    "workflows",
    "approvals",
    "realtime",
    "examples",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "hitlproject.urls"
WSGI_APPLICATION = "hitlproject.wsgi.application"
ASGI_APPLICATION = "hitlproject.asgi.application"

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

# --- Database -------------------------------------------------------------------------------
# Empty counts as unset: a blank ``DATABASE_URL=`` line in a .env or compose file.
_database_url = env.str("DATABASE_URL", default="") or f"sqlite:///{DATA_DIR / 'db.sqlite3'}"
with warnings.catch_warnings():
    # django-environ warns about a URL it cannot read by printing it, password included; the
    # error below says what is wrong without it.
    warnings.simplefilter("ignore")
    DATABASES = {"default": env.db_url_config(_database_url)}
_db = DATABASES["default"]
if not _db.get("ENGINE", "").startswith("django."):
    raise ImproperlyConfigured(
        "DATABASE_URL is not a database URL: use postgres://user:password@host:5432/name, or "
        "leave it unset for the embedded SQLite database."
    )
# Workers keep connections open: django-q2's ORM broker on PostgreSQL measured 33 tasks/s
# reconnecting per task and 350 tasks/s with persistent connections.
_db["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=600)
_db["CONN_HEALTH_CHECKS"] = True
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["OPTIONS"] = {
        # IMMEDIATE takes the write lock at BEGIN, so concurrent writers queue on the busy
        # timeout instead of failing with "database is locked" when a read upgrades to a write.
        "transaction_mode": "IMMEDIATE",
        "timeout": env.int("SQLITE_BUSY_TIMEOUT", default=20),
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file (not :memory:) so that multi-process tests can share the test database.
    _db["TEST"] = {"NAME": str(DATA_DIR / "test_db.sqlite3")}
elif _db["ENGINE"] == "django.db.backends.postgresql":
    _options = _db.setdefault("OPTIONS", {})
    if not env.bool("PG_JIT", default=False):
        # No JIT compilation: these are short queries, and PostgreSQL compiles whenever a
        # plan's *estimated* cost passes jit_above_cost. One misestimate (a visibility subquery
        # over a long history) spent 804 ms compiling for a query that ran in 50 ms.
        _options["options"] = f"{_options.get('options', '')} -c jit=off".strip()
    if process.serves_asgi and env.bool("HITL_DB_POOL", default=True):
        # Under ASGI each request's synchronous code runs in a thread of its own and Django's
        # connections belong to threads, so persistent connections were opened request after
        # request and left open (15 server processes after 60 API reads; the requests that
        # opened them waited for it: bench/README). Django's advice for ASGI is a pool. Only
        # the ASGI server gets one: django-q2 forks its workers; a pool must not cross a fork.
        _db["CONN_MAX_AGE"] = 0
        _options["pool"] = {"min_size": 2, "max_size": env.int("HITL_DB_POOL_SIZE", default=10)}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def email_settings(url: str) -> dict:
    """EMAIL_* settings from an ``EMAIL_URL`` (django-environ: ``smtp+tls://user:pass@host:587``,
    ``consolemail://``...), leaving Django's defaults where the URL says nothing."""
    return {k: v for k, v in env.email_url_config(url).items() if v not in (None, "")}


# --- Email ----------------------------------------------------------------------------------
if env.str("EMAIL_URL", default=""):
    globals().update(email_settings(env.str("EMAIL_URL")))
else:
    # The embedded default has no mail server (an SMTP default would fail and retry every
    # notification): each message is written as a file under var/mail/, where it can be read.
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(DATA_DIR / "mail")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="hitl@localhost")

# --- Redis: broker, channel layer, cache ----------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")

HITL_TASK_TIMEOUT = env.int("HITL_TASK_TIMEOUT", default=300)

Q_CLUSTER = {
    "name": env.str("HITL_Q_NAME", default="hitl"),
    "workers": env.int("HITL_WORKERS", default=2),
    "timeout": HITL_TASK_TIMEOUT,
    # retry must exceed timeout, or django-q2 re-delivers a task that is still running
    # (checked by workflows.checks).
    "retry": env.int("HITL_TASK_RETRY", default=HITL_TASK_TIMEOUT + 60),
    # django-q2 re-delivers a killed worker's task regardless (django-q2 issue 327); the engine
    # bounds attempts with its own counters, this only limits broker churn.
    "max_attempts": 3,
    "ack_failures": True,
    # Successful advance tasks carry no information the run tables do not; keep failures only.
    "save_limit": env.int("HITL_Q_SAVE_LIMIT", default=-1),
    "catch_up": False,
    "label": "Task queue",
    # django-q2 sets its own logger's level from here ("Enqueued ..." at INFO per task).
    "log_level": env.str("Q_LOG_LEVEL", default="WARNING"),
    "recycle": 500,
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 8 defaults socket_timeout to 5 s, the same as channels-redis' blocking
            # BZPOPMIN, so every idle consumer died with TimeoutError after 5 s
            # (django/channels_redis#422). Above 5 s it still notices a dead connection.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}]},
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
else:
    Q_CLUSTER["orm"] = "default"
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Auth, i18n, static ---------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# Production settings switch to hashed (manifest) names, which need `collectstatic` first.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

REST_FRAMEWORK = {
    # Token first: DRF answers a request without valid credentials 401 with the first class's
    # WWW-Authenticate challenge; with the session first (which has none) it was always a 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's defaults, with a JSON parser that answers JSON nested too deeply with a 400.
    "DEFAULT_PARSER_CLASSES": [
        "hitlproject.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "hitlproject.api.errors.exception_handler",
    # Counted in the default cache: Redis when REDIS_URL is set, so limits hold across processes.
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("HITL_API_ANON_RATE", default="60/minute"),
        "user": env.str("HITL_API_USER_RATE", default="6000/minute"),
        "webhook": env.str("HITL_WEBHOOK_RATE", default="600/minute"),
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "HITL workflows API",
    "DESCRIPTION": "Start and signal durable human-in-the-loop workflows, answer input "
    "requests and decide approvals. Errors are JSON: {code, message, fields}.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI assets ship in a Python package: the docs work without a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "workflows.models.RunStatus",
        "StepStatusEnum": "workflows.models.StepStatus",
        "WaitStatusEnum": "workflows.models.WaitStatus",
        "WaitKindEnum": "workflows.models.WaitKind",
        "ApprovalStatusEnum": "approvals.models.ApprovalStatus",
        "StageStatusEnum": "approvals.models.StageStatus",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "workflows": {"handlers": ["console"], "level": env.str("HITL_LOG_LEVEL", "INFO")},
    },
}

# --- The engine -----------------------------------------------------------------------------
# Extra modules holding @workflow functions, besides each installed app's workflows.py.
HITL_WORKFLOW_MODULES = env.list("HITL_WORKFLOW_MODULES", default=[])
# ``manage.py hitl_demo`` creates staff accounts with a published password; production
# settings turn it off.
HITL_DEMO_ACCOUNTS = True
# How long a worker owns a run it advances. It must outlast a task (django-q2 kills a task at
# its timeout), so a slow step is never taken over while it still runs.
HITL_LEASE_SECONDS = env.int("HITL_LEASE_SECONDS", default=HITL_TASK_TIMEOUT + 30)
# One advance task yields (and re-enqueues the run) after this long, so a long workflow never
# runs into the task timeout between two steps.
HITL_ADVANCE_BUDGET_SECONDS = env.float(
    "HITL_ADVANCE_BUDGET_SECONDS", default=HITL_TASK_TIMEOUT / 2
)
# A pending run whose advance was enqueued this long ago without being claimed is enqueued
# again (the broker may have lost it, e.g. Redis restarted).
HITL_REQUEUE_AFTER_SECONDS = env.int("HITL_REQUEUE_AFTER_SECONDS", default=60)
# How many times a run may be taken back from a worker that died holding it before it fails.
HITL_MAX_RECOVERIES = env.int("HITL_MAX_RECOVERIES", default=10)
# Each worker process checks for due timers this often (seconds); 0 leaves it to the
# django-q2 schedule, which runs about every 30-60 s.
HITL_TIMER_TICK_SECONDS = env.float("HITL_TIMER_TICK_SECONDS", default=1.0)
# Admin filter choices (workflow names, open stages, assignees) are cached this long (s); 0: off.
HITL_FILTER_CHOICES_CACHE_SECONDS = env.int("HITL_FILTER_CHOICES_CACHE_SECONDS", default=30)
# Default step retry policy.
HITL_STEP_RETRIES = env.int("HITL_STEP_RETRIES", default=0)
HITL_STEP_BACKOFF_SECONDS = env.float("HITL_STEP_BACKOFF_SECONDS", default=1.0)
HITL_STEP_MAX_BACKOFF_SECONDS = env.float("HITL_STEP_MAX_BACKOFF_SECONDS", default=3600.0)

# Signed inbound webhooks (workflows.webhooks): comma-separated secrets (several for rotation),
# the user the webhook acts as, and how far a timestamp may be from the server's clock.
HITL_WEBHOOK_SECRETS = env.list("HITL_WEBHOOK_SECRETS", default=[])
HITL_WEBHOOK_USER = env.str("HITL_WEBHOOK_USER", default="webhook")
HITL_WEBHOOK_TOLERANCE_SECONDS = env.int("HITL_WEBHOOK_TOLERANCE_SECONDS", default=300)

# Reviewers watch the runs and approval events they are asked to decide (approvals.realtime).
HITL_REALTIME_VISIBILITY = "approvals.realtime.Visibility"
