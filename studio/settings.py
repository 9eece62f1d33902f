"""Studio settings: one file, driven by the environment, with defaults that run on a laptop.

Every variable read here is documented in README.md ("Configuration").
"""

import os
import secrets
import socket
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


class ImproperlyConfiguredEnv(Exception):
    pass


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfiguredEnv(f"{name}={raw!r} is not a boolean (use true or false)")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfiguredEnv(f"{name}={raw!r} is not an integer") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfiguredEnv(f"{name}={raw!r} is not a number") from None


RATE_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def env_rate(name: str, default: str) -> str:
    """A rate such as "1200/minute": a whole number of calls per second, minute, hour or day."""
    raw = env_str(name, default).strip()
    count, _, period = raw.partition("/")
    if not count.isdigit() or int(count) < 1 or period not in RATE_PERIODS:
        raise ImproperlyConfiguredEnv(f"{name}={raw!r} is not a rate (use e.g. 1200/minute)")
    return raw


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


# --- Files ---------------------------------------------------------------------------------
DATA_DIR = Path(env_str("STUDIO_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)
# Every artifact (uploads, Parquet versions, models, logs) lives under this one root (R1).
ARTIFACT_ROOT = DATA_DIR / "artifacts"


def _secret_key() -> str:
    """SECRET_KEY from the environment, else generated once and kept in the data directory."""
    key = env_str("SECRET_KEY")
    if key:
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        # Processes that start together (a cluster's nodes) race here: each writes a key to its own
        # file and links it into place; the first link wins, the others read the winner's key, and
        # no process ever reads a half-written one.
        own = path.with_name(f".secret_key.{os.getpid()}")
        fd = os.open(own, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(50))
        try:
            os.link(own, path)
        except FileExistsError:
            pass
        finally:
            own.unlink()
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Behind TLS (a reverse proxy or a load balancer): secure cookies, HSTS, redirect to HTTPS.
HTTPS = env_bool("STUDIO_HTTPS", False)
if HTTPS:
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("STUDIO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("STUDIO_HSTS_PRELOAD", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "csp",
    "axes",
    "studio",
    "workspaces",
    "data",
    "compute",
    "environments",
    "training",
    "commands",
    "labs",
    "endpoints",
    "tracking",
    "portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Scoring requests (an endpoint key, no session) leave the chain here, with the security headers.
    "endpoints.scoring_route.ScoringRouteMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Deny by default (R3): every page needs a login unless marked @login_not_required.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    "studio.middleware.StorageUnavailableMiddleware",
    # Last, as django-axes requires: it turns a locked-out sign-in into the lock-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

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
                "workspaces.context_processors.shell",
            ],
            "builtins": ["studio.templatetags.studio_tags", "workspaces.templatetags.workspace_tags"],
        },
    },
]

# --- Database --------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'studio.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets the web server read while a worker writes; IMMEDIATE takes the write lock at
        # BEGIN so two writers queue on the busy timeout instead of failing with "locked".
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # Tests share one file database with real worker processes (an in-memory one cannot be shared).
    # One file per test run, so parallel runs on one machine do not collide.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-studio-{os.getpid()}.sqlite3")}
elif env_bool("DB_TRANSACTION_POOLING"):
    # Behind PgBouncer in transaction pooling a server-side cursor (QuerySet.iterator) can land on
    # another server connection than the one that declared it (docs/scale.md).
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth --------------------------------------------------------------------------------------
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
# Sign-in throttling (R10) by django-axes: failures are counted per username and per address, each
# on its own; past the limit both sign-in pages answer 429 with the lock-out page until the cool-off
# passes or staff lift the lock in the admin (Axes > Access attempts, or the users' action).
# AxesBackend only refuses locked-out sign-ins; ModelBackend checks the password.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("STUDIO_LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_float("STUDIO_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# A success does not wipe the count: else one valid account would reset its address's failures
# and let a password spray from that address go on forever. Failures age out after the cool-off.
AXES_RESET_ON_SUCCESS = False
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# The address the connection came from; a proxy's X-Forwarded-For could be forged by anyone.
AXES_CLIENT_IP_CALLABLE = "studio.authentication.client_address"
# One-time sign-in links (password resets issued by staff) stop working after this long.
STUDIO_SIGN_IN_LINK_HOURS = env_float("STUDIO_SIGN_IN_LINK_HOURS", 24)
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

# --- Static files (served by whitenoise; every asset comes from an installed package) --------
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
try:  # plotly.js ships inside the plotly wheel
    import plotly

    STATICFILES_DIRS.append(("plotly", Path(plotly.__file__).parent / "package_data"))
except ImportError:  # pragma: no cover - plotly is in requirements.txt
    pass
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}


# --- Object storage: ARTIFACT_ROOT stays every host's working copy (and the only copy by default);
# with STUDIO_STORAGE_URL=s3://bucket/prefix?endpoint_url=http://minio:9000&region=eu-west-1 each
# finished file is also published there with its SHA-256, and a host that lacks a file fetches it
# before use (studio/objectstore.py). Credentials come from the usual AWS_* variables.
def env_storage_url(name: str) -> dict | None:
    """The options of the artifacts storage from an s3:// URL, or None when the variable is empty."""
    raw = env_str(name, "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = set(query) - {"endpoint_url", "region"}
    if parts.scheme != "s3" or not parts.hostname or unknown or parts.username or parts.fragment:
        raise ImproperlyConfiguredEnv(
            f"{name}={raw!r} is not s3://bucket[/prefix][?endpoint_url=http(s)://host:port&region=name]"
            + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else "")
        )
    endpoint_url = query.get("endpoint_url", "")
    if endpoint_url and urlsplit(endpoint_url).scheme not in ("http", "https"):
        raise ImproperlyConfiguredEnv(f"{name}: endpoint_url must be an http:// or https:// URL")
    return {
        "bucket_name": parts.hostname,
        "location": parts.path.strip("/"),
        "endpoint_url": endpoint_url or None,
        "region_name": query.get("region") or None,
    }


STUDIO_STORAGE_OPTIONS = env_storage_url("STUDIO_STORAGE_URL")
# Files above this size go up and down in parts of this size, several at a time.
STUDIO_STORAGE_MULTIPART_BYTES = env_int("STUDIO_STORAGE_MULTIPART_BYTES", 16 * 1024 * 1024)
if STUDIO_STORAGE_OPTIONS:
    STORAGES["artifacts"] = {"BACKEND": "studio.objectstore_s3.ArtifactStorage", "OPTIONS": STUDIO_STORAGE_OPTIONS}
WHITENOISE_USE_FINDERS = DEBUG

# --- Content security policy (R8): no inline scripts, nothing from other origins -------------
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        # plotly.js and htmx set element styles at run time
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- REST API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Tokens first, so an unauthenticated API call gets 401 with WWW-Authenticate: Bearer. A job's
    # own token (`sjt_…`) comes before all: it refuses every view but the run API's (a string path,
    # not an import, so the layers hold).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "compute.jobs.authentication.JobTokenAuthentication",
        "studio.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["studio.api.throttling.ApiRateThrottle"],
    "DEFAULT_PAGINATION_CLASS": "studio.api.pagination.StudioPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "studio.api.schema.StudioAutoSchema",
    "EXCEPTION_HANDLER": "studio.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON bodies only (form fields have no types, so "0" and "" would pass for numbers and nulls),
    # depth and unicode checked before parsing; the upload view declares its own multipart parser.
    "DEFAULT_PARSER_CLASSES": ["studio.api.parsers.CheckedJSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "URL_FORMAT_OVERRIDE": None,  # `?format=` belongs to the views that use it (downloads)
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Studio API",
    "DESCRIPTION": (
        "The REST API of Studio. Authenticate with a personal API token in the header "
        "`Authorization: Bearer <token>`. Every 4xx response has the body "
        '`{"error": {"code", "message", "fields"}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # A PATCH body is documented as its serializer declares it (a required field stays required).
    "COMPONENT_SPLIT_PATCH": False,
    # `<id:...>` (studio.ids) is a bounded whole number: documented with its pattern.
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "integer", "maximum": 10**18 - 1, "minimum": 0}},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "studio.api.errors.add_error_responses",
    ],
    "SECURITY": [{"bearerAuth": []}],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "compute.jobs.models.JobStatus",
        "JobKindEnum": "compute.jobs.kinds.CHOICES",
        "NodeStatusEnum": "compute.models.NodeStatus",
        "TargetKindEnum": "compute.models.TargetKind",
        "IngestStatusEnum": "data.models.IngestStatus",
        "ScheduleActionEnum": "labs.models.ScheduleAction",
    },
}

# --- Celery (policy lives here; studio/celery.py only builds the app) --------------------------
# Default: the embedded broker, kombu's filesystem transport with atomic hand-overs (studio/broker.py).
BROKER_DIR = DATA_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
EMBEDDED_BROKER = CELERY_BROKER_URL.startswith("filesystem://")
JOB_TIME_LIMIT_SECONDS = env_int("STUDIO_JOB_TIME_LIMIT", 6 * 3600)
CELERY_VISIBILITY_TIMEOUT = JOB_TIME_LIMIT_SECONDS + 3600  # must exceed the hard time limit
if EMBEDDED_BROKER:
    for sub in ("queue", "processed", "control", "broken"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "broken_folder": str(BROKER_DIR / "broken"),  # unreadable message files are set aside here
        "store_processed": False,
        # The filesystem transport polls; a short interval keeps job start well under a second.
        "polling_interval": env_float("STUDIO_BROKER_POLL_SECONDS", 0.05),
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
# Celery reads the visibility timeout in three places; set all of them (celery/celery#7651).
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_VISIBILITY_TIMEOUT_SECONDS = CELERY_VISIBILITY_TIMEOUT
CELERY_TASK_IGNORE_RESULT = True  # the database is the source of truth, not a result backend
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A job's process exits on purpose when its time limit passes or it is canceled. Results are
# never used, so the pool need not wait its default 10 s for one before taking the next job.
CELERY_WORKER_LOST_WAIT = 1.0
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = JOB_TIME_LIMIT_SECONDS + 60
CELERY_TASK_DEFAULT_QUEUE = "studio"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "worker-canary": {"task": "studio.tasks.worker_canary_task", "schedule": 30.0},
    "jobs-reconcile": {"task": "training.tasks.reconcile_task", "schedule": 5.0},
    "uploads-sweep": {"task": "workspaces.tasks.remove_stale_staging_task", "schedule": 300.0},
    "command-scratch-sweep": {"task": "commands.tasks.remove_stale_scratch_task", "schedule": 300.0},
    "instance-schedules": {"task": "labs.tasks.apply_schedules_task", "schedule": 60.0},
}

# --- Compute and jobs -----------------------------------------------------------------------------
# A node and a running job heartbeat this often; past the timeout the reconciler declares them lost.
STUDIO_HEARTBEAT_SECONDS = env_float("STUDIO_HEARTBEAT_SECONDS", 2.0)
STUDIO_HEARTBEAT_TIMEOUT = env_float("STUDIO_HEARTBEAT_TIMEOUT", 20.0)
# A queued job whose message may have been lost is sent again after this long.
STUDIO_REPUBLISH_AFTER = env_float("STUDIO_REPUBLISH_AFTER", 10.0)
# How often the local agent scales clusters and starts or stops node processes.
STUDIO_AGENT_INTERVAL = env_float("STUDIO_AGENT_INTERVAL", 0.25)
# This host's name as its agents and replicas record it on their nodes, and as an agent restarting
# finds the nodes it left behind: set it where hosts share a name (containers, network namespaces).
STUDIO_HOSTNAME = env_str("STUDIO_HOSTNAME").strip() or socket.gethostname()
STUDIO_JOB_MAX_ATTEMPTS = env_int("STUDIO_JOB_MAX_ATTEMPTS", 3)
STUDIO_JOB_DEFAULT_TIME_LIMIT = env_int("STUDIO_JOB_DEFAULT_TIME_LIMIT", 3600)
# Quotas (R10): nodes and cores a workspace may run at once across its clusters and instances
# (staff override them per workspace in the admin), and what this host gives the local provisioner.
# A node process runs one job at a time with single-threaded math libraries: it takes one core.
STUDIO_WORKSPACE_MAX_NODES = env_int("STUDIO_WORKSPACE_MAX_NODES", 16)
STUDIO_WORKSPACE_MAX_CORES = env_int("STUDIO_WORKSPACE_MAX_CORES", 32)
STUDIO_HOST_NODE_CORES = env_int("STUDIO_HOST_NODE_CORES", len(os.sched_getaffinity(0)))
STUDIO_HOST_NODE_MEMORY_MIB = env_int(
    "STUDIO_HOST_NODE_MEMORY_MIB", int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.75) // 2**20
)
# Serving replicas on this host (each one deployment's model behind an HTTP server), apart from job nodes.
STUDIO_HOST_MAX_REPLICAS = env_int("STUDIO_HOST_MAX_REPLICAS", 16)
# Standby replicas the local agent keeps while there are inference clusters (0 or 1): a process
# with the serving stack imported, which the next replica takes (a cold start of well under 2 s).
STUDIO_REPLICA_STANDBY = env_int("STUDIO_REPLICA_STANDBY", 1)
STUDIO_NODE_MEMORY_MIB = env_int("STUDIO_NODE_MEMORY_MIB", 1024)
# Environments of command jobs: each host builds them into its own cache (a local disk, not the shared
# data directory), keyed by the specification's hash; least recently used ones go past the size limit.
# Outside any home folder, so a sandbox user can read (never write) it; the builder refuses a cache
# folder that is not the node user's or that others can write to (a planted environment would run).
STUDIO_ENVIRONMENT_CACHE_DIR = Path(env_str("STUDIO_ENVIRONMENT_CACHE_DIR", "/var/tmp/studio-environments"))  # noqa: S108
STUDIO_ENVIRONMENT_CACHE_BYTES = env_int("STUDIO_ENVIRONMENT_CACHE_BYTES", 20 * 1024**3)

# --- Command jobs (users' own code, in the sandbox) -----------------------------------------------------
# Memory is the node size's, capped here; processes, open files and output bytes are per job.
STUDIO_COMMAND_MAX_MEMORY_BYTES = env_int("STUDIO_COMMAND_MAX_MEMORY_BYTES", 64 * 2**30)
STUDIO_COMMAND_MAX_PROCESSES = env_int("STUDIO_COMMAND_MAX_PROCESSES", 256)
STUDIO_COMMAND_MAX_OPEN_FILES = env_int("STUDIO_COMMAND_MAX_OPEN_FILES", 1024)
STUDIO_COMMAND_MAX_OUTPUT_BYTES = env_int("STUDIO_COMMAND_MAX_OUTPUT_BYTES", 2 * 2**30)
# The address a job's code reaches the studio's API at (with its run token, when it has network).
STUDIO_PUBLIC_URL = env_str("STUDIO_PUBLIC_URL", "http://127.0.0.1:8000")

# --- JupyterLab on compute instances ------------------------------------------------------------------
# The lab proxy (`manage.py lab_proxy`, started by the run command) serves the instances' labs on an
# origin of their own, so notebook output cannot act on the studio's pages. It authenticates with the
# studio's session cookie: a different port of the studio's host name works as it is (cookies ignore
# ports); another host name needs SESSION_COOKIE_DOMAIN covering both.
STUDIO_LAB_PORT = env_int("STUDIO_LAB_PORT", env_int("STUDIO_PORT", 8000) + 1)
# The proxy's public origin, e.g. https://labs.example.org; empty: the studio's own host name at STUDIO_LAB_PORT.
STUDIO_LAB_URL = env_str("STUDIO_LAB_URL").rstrip("/")
# How long the proxy trusts a session → lab look-up (a revoked session or a stopped lab ends within it).
STUDIO_LAB_ROUTE_SECONDS = env_float("STUDIO_LAB_ROUTE_SECONDS", 5.0)

# --- Serving ------------------------------------------------------------------------------------------
STUDIO_SCORING_MAX_ROWS = env_int("STUDIO_SCORING_MAX_ROWS", 10_000)
STUDIO_FORECAST_REQUEST_SECONDS = env_int("STUDIO_FORECAST_REQUEST_SECONDS", 10)  # refits per scoring request
STUDIO_SCORING_MAX_BODY_BYTES = env_int("STUDIO_SCORING_MAX_BODY_BYTES", 20 * 1024 * 1024)
STUDIO_MONITOR_FLUSH_SECONDS = env_float("STUDIO_MONITOR_FLUSH_SECONDS", 5.0)
# The serving data plane (README "Serving topology"): each deployment's replicas are processes on
# its inference cluster's nodes; the scoring URL forwards to them. While a deployment has no ready
# replica, the portal scores in its own process (True, the embedded default) or answers 503
# "starting" with Retry-After (False: web processes then never load a model).
STUDIO_SERVING_IN_PROCESS = env_bool("STUDIO_SERVING_IN_PROCESS", True)
# The address a replica binds (127.0.0.1: only this host reaches it) and the host it reports for
# the portal to reach it (empty: the bound address); a replica's port is free one the OS picks.
STUDIO_REPLICA_BIND = env_str("STUDIO_REPLICA_BIND", "127.0.0.1")
STUDIO_REPLICA_ADVERTISE = env_str("STUDIO_REPLICA_ADVERTISE")
# How long a scoring request waits for a replica on its way (a cold start: scaled to zero, or
# just deployed) before a 503 "starting", when the portal does not score in its own process.
STUDIO_REPLICA_WAIT_SECONDS = env_float("STUDIO_REPLICA_WAIT_SECONDS", 30.0)
# How long the portal waits for a replica's answer (a forecast refits: its own limit plus room).
STUDIO_REPLICA_TIMEOUT_SECONDS = env_float("STUDIO_REPLICA_TIMEOUT_SECONDS", STUDIO_FORECAST_REQUEST_SECONDS + 50)
# JSON bodies (API and scoring) nested deeper than this are refused before parsing (R10).
STUDIO_JSON_MAX_DEPTH = env_int("STUDIO_JSON_MAX_DEPTH", 64)
# The shared cache holds per-key throttling counters: Redis in production (STUDIO_CACHE_URL),
# files in the data directory by default (shared by every process of this machine).
STUDIO_CACHE_URL = env_str("STUDIO_CACHE_URL")
if STUDIO_CACHE_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": STUDIO_CACHE_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
            "OPTIONS": {"MAX_ENTRIES": 10_000},
        }
    }

# --- Limits -------------------------------------------------------------------------------------
# API calls per token (per user for calls signed in by session), counted in the shared cache across
# web processes: "<count>/<second|minute|hour|day>". Past it: 429 with Retry-After.
STUDIO_API_RATE_LIMIT = env_rate("STUDIO_API_RATE_LIMIT", "1200/minute")
DATA_UPLOAD_MAX_MEMORY_SIZE = 25 * 1024 * 1024  # request bodies read into memory (scoring has its own cap)
# Uploads of data files: the cap is enforced while streaming (default 2 GiB).
STUDIO_UPLOAD_MAX_BYTES = env_int("STUDIO_UPLOAD_MAX_BYTES", 2 * 1024**3)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024  # larger uploads stream to a temporary file
# Uploads one user may stream at once (across every web process).
STUDIO_UPLOAD_MAX_CONCURRENT = env_int("STUDIO_UPLOAD_MAX_CONCURRENT", 3)
# An upload that has received no byte for this long is dead: its staging file is swept, its slot freed.
STUDIO_UPLOAD_STALE_SECONDS = env_int("STUDIO_UPLOAD_STALE_SECONDS", 900)
# Files at least this large are ingested on the node in a fresh process with only the data engine
# loaded (less memory than the node's own process, which keeps its heap clean); 0: every file.
STUDIO_INGEST_OWN_PROCESS_FROM_BYTES = env_int("STUDIO_INGEST_OWN_PROCESS_FROM_BYTES", 16_000_000)
# Uploads at least this large (by Content-Length) are ingested while they arrive: the ingest job
# starts when the file's first bytes do and parses behind the upload (local storage only; 0: never).
STUDIO_INGEST_WHILE_UPLOADING_FROM_BYTES = env_int("STUDIO_INGEST_WHILE_UPLOADING_FROM_BYTES", 16_000_000)
# Imports of data from an HTTP(S) URL or a datastore's query (run by the ingest job on a node).
# The largest file a URL import downloads (default: the upload limit); redirects are followed at most 5 times.
STUDIO_IMPORT_MAX_BYTES = env_int("STUDIO_IMPORT_MAX_BYTES", STUDIO_UPLOAD_MAX_BYTES)
# Seconds to connect, and seconds a whole download may take.
STUDIO_IMPORT_CONNECT_TIMEOUT = env_float("STUDIO_IMPORT_CONNECT_TIMEOUT", 10.0)
STUDIO_IMPORT_TIMEOUT_SECONDS = env_float("STUDIO_IMPORT_TIMEOUT_SECONDS", 600.0)
# URL imports refuse private, loopback, link-local, multicast and reserved addresses (the studio's
# own network) unless this is true, or the address is in one of these networks (e.g. "10.1.0.0/16").
STUDIO_IMPORT_ALLOW_PRIVATE = env_bool("STUDIO_IMPORT_ALLOW_PRIVATE", False)
STUDIO_IMPORT_ALLOWED_NETWORKS = env_list("STUDIO_IMPORT_ALLOWED_NETWORKS", [])
# A datastore query: its statement_timeout (milliseconds) and the most rows it may return (more: the import fails).
STUDIO_IMPORT_STATEMENT_TIMEOUT_MS = env_int("STUDIO_IMPORT_STATEMENT_TIMEOUT_MS", 300_000)
STUDIO_IMPORT_MAX_ROWS = env_int("STUDIO_IMPORT_MAX_ROWS", 10_000_000)
# A file a running job's code sends to the run API (PUT /api/v1/run/artifacts/<path>): 413 past it.
STUDIO_RUN_ARTIFACT_MAX_BYTES = env_int("STUDIO_RUN_ARTIFACT_MAX_BYTES", 100 * 1024**2)
# Code snapshots of command jobs: the bytes an upload (archive or folder) may send and its files
# may come to once unpacked, and how many files it may hold.
STUDIO_CODE_MAX_BYTES = env_int("STUDIO_CODE_MAX_BYTES", 50 * 1024**2)
STUDIO_CODE_MAX_FILES = env_int("STUDIO_CODE_MAX_FILES", 5000)
# Models registered from a file (skops, ONNX or an MLflow model folder): the largest upload, and the
# largest model file read out of a folder.
STUDIO_MODEL_UPLOAD_MAX_BYTES = env_int("STUDIO_MODEL_UPLOAD_MAX_BYTES", 200 * 1024**2)
# Bytes of data versions, artifacts and model files per workspace (staff can change it per workspace).
STUDIO_WORKSPACE_STORAGE_QUOTA_BYTES = env_int("STUDIO_WORKSPACE_STORAGE_QUOTA_BYTES", 20 * 1024**3)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {
        "routine_tasks": {
            "()": "studio.tasklog.RoutineTaskFilter",
            "tasks": [entry["task"] for entry in CELERY_BEAT_SCHEDULE.values()],
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # (where Celery logs a task sent, received and done: the scheduler's ticks are dropped there)
        **{
            name: {"filters": ["routine_tasks"]}
            for name in ("celery.beat", "celery.worker.strategy", "celery.app.trace")
        },
    },
}
