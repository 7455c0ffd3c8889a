"""Settings, all from the environment.

Defaults give the all-in-one dev setup (an SQLite file, a local-memory cache and
the in-process notice bus); production and CI set DATABASE_URL and REDIS_URL.
"""
import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("INTERLOCK_STATE_DIR", BASE_DIR / "var"))

DEBUG = os.environ.get("DEBUG", "").lower() in ("1", "true", "yes")
SECRET_KEY = os.environ.get("SECRET_KEY", "interlock-dev-only-secret-key-change-me")
ALLOWED_HOSTS = os.environ.get("ALLOWED_HOSTS", "*").split(",")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "service.tenants",
    "service.mesh",
    "service.xds",
    "service.health",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "service.field_trees.LendFieldTrees",
]

ROOT_URLCONF = "service.urls"
APPEND_SLASH = False  # an API answers where it is asked, never with a redirect
WSGI_APPLICATION = "service.wsgi.application"
ASGI_APPLICATION = "service.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

# Nothing waits on Postgres for long (docs/operations.md, "Faults"): a new
# connection gives up after DB_CONNECT_TIMEOUT seconds (libpq's connect_timeout,
# at least 2); Postgres cancels a statement after DB_STATEMENT_TIMEOUT and a
# wait for a lock after DB_LOCK_TIMEOUT; and the client itself gives up on a
# server that does not answer at all (frozen, or a network that drops packets)
# DB_RESPONSE_GRACE seconds after the statement timeout (service/postgresql/
# deadlines.py). 0 turns a timeout off. `interlock migrate` runs without a
# statement timeout (a migration may rewrite a large table).
DB_CONNECT_TIMEOUT = int(os.environ.get("DB_CONNECT_TIMEOUT", "3"))
DB_STATEMENT_TIMEOUT = float(os.environ.get("DB_STATEMENT_TIMEOUT", "5"))
DB_LOCK_TIMEOUT = float(os.environ.get("DB_LOCK_TIMEOUT", "3"))
DB_RESPONSE_GRACE = 1.0

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{STATE_DIR / 'interlock.sqlite3'}"),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # Parameters travel apart from the SQL (psycopg's server-side binding), and
    # a statement the connection has run 5 times is prepared and from then on
    # only executed: the write path's statements are fixed (service.sql). Django
    # turns preparing off unless asked (for poolers that drop prepared
    # statements; docs/operations.md); here it halved Postgres's CPU per write.
    DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
    # Django's backend, reading timestamps in C (service/postgresql/base.py).
    DATABASES["default"]["ENGINE"] = "service.postgresql"
    DATABASES["default"]["OPTIONS"].update(
        connect_timeout=DB_CONNECT_TIMEOUT,
        options=f"-c statement_timeout={DB_STATEMENT_TIMEOUT * 1000:.0f} -c lock_timeout={DB_LOCK_TIMEOUT * 1000:.0f}",
    )
    DATABASES["default"]["RESPONSE_TIMEOUT"] = DB_STATEMENT_TIMEOUT and DB_STATEMENT_TIMEOUT + DB_RESPONSE_GRACE

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
# Seconds any Redis client (the cache, the notice bus, the load store) waits to
# connect or for a reply. Redis answers in well under a millisecond; past this it
# is away, and every use of it has a way on without it (docs/operations.md).
REDIS_TIMEOUT = float(os.environ.get("REDIS_TIMEOUT", "1"))
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "interlock",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": REDIS_TIMEOUT, "SOCKET_TIMEOUT": REDIS_TIMEOUT},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Where change notices go: "redis" when a Redis URL is configured, else in-process.
NOTICE_BUS = os.environ.get("NOTICE_BUS", "redis" if REDIS_URL else "inprocess")
# Seconds between an xDS replica's looks at the revisions of the meshes it
# serves: the most a change whose notice was lost waits (service/xds/sync.py).
XDS_CATCH_UP_SEC = float(os.environ.get("XDS_CATCH_UP_SEC", "30"))
# Endpoints given by host name reach proxies as the addresses the xDS replica
# resolves them to (EDS carries IPs; service/xds/resolve.py): re-resolved every
# XDS_DNS_REFRESH_SEC, each lookup given at most XDS_DNS_TIMEOUT_SEC, at most
# XDS_DNS_CACHE_NAMES names remembered per replica process.
XDS_DNS_REFRESH_SEC = float(os.environ.get("XDS_DNS_REFRESH_SEC", "30"))
XDS_DNS_TIMEOUT_SEC = float(os.environ.get("XDS_DNS_TIMEOUT_SEC", "5"))
XDS_DNS_CACHE_NAMES = int(os.environ.get("XDS_DNS_CACHE_NAMES", "10000"))
# Pub/sub channels span a Redis server's databases: deployments sharing one
# server (or test runs) keep apart by channel.
NOTICE_CHANNEL = os.environ.get("NOTICE_CHANNEL", "interlock:notices")

# xDS replicas: how often the credentials of open streams (and those verified
# lately) are re-checked against the database, so that a revoked node token or
# API key has its streams ended within this many seconds; and how long a
# verified credential still opens streams while the database is away (the
# longest outage proxies can reconnect through; a token revoked meanwhile is
# honoured until the database is back). docs/xds-server.md.
XDS_CREDENTIAL_RECHECK_SEC = float(os.environ.get("XDS_CREDENTIAL_RECHECK_SEC", "2"))
XDS_VERIFIED_CREDENTIAL_MAX_AGE_SEC = float(os.environ.get("XDS_VERIFIED_CREDENTIAL_MAX_AGE_SEC", str(24 * 3600)))
# Seconds a disconnected proxy stays on the proxies API before the xDS
# replicas' sweep forgets it (service/xds/records.py); default a day.
PROXY_RETENTION = int(os.environ.get("PROXY_RETENTION", str(24 * 3600)))

# Health workers (workers/, docs/health-checks.md). The Celery broker: Redis
# by default, RabbitMQ (amqp://...) by changing only this URL; `interlock dev`
# runs its worker in-process on the in-memory broker.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL or "memory://")
# The source regions that run workers: a health check without source_regions
# is probed from each of these, a queue `health.<region>` each.
HEALTH_REGIONS = [region for region in os.environ.get("HEALTH_REGIONS", "default").split(",") if region]
# The beat's tick: how often it looks for health checks due for a probe
# round (the finest check interval it keeps); the endpoints of one round go
# to a region's workers in tasks of at most HEALTH_PROBE_BATCH endpoints each.
HEALTH_TICK_SEC = float(os.environ.get("HEALTH_TICK_SEC", "1"))
HEALTH_PROBE_BATCH = int(os.environ.get("HEALTH_PROBE_BATCH", "500"))
# Only the beat holding this lock in Redis schedules; it refreshes the lock
# every tick, and a standby beat takes over this many seconds after the
# holder stops refreshing it.
HEALTH_BEAT_LOCK_TTL_SEC = float(os.environ.get("HEALTH_BEAT_LOCK_TTL_SEC", "10"))
# Networks no probe (nor webhook) may reach, after name resolution: link-local
# (cloud metadata services live there) and the metadata addresses by default,
# plus the operator's own (comma-separated CIDRs). Loopback is refused unless
# PROBE_ALLOW_LOOPBACK is set (interlock dev and tests).
PROBE_DENY_NETWORKS = [
    "169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32",
    *[cidr.strip() for cidr in os.environ.get("PROBE_DENY_NETWORKS", "").split(",") if cidr.strip()],
]
PROBE_ALLOW_LOOPBACK = os.environ.get("PROBE_ALLOW_LOOPBACK", "").lower() in ("1", "true", "yes")

USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"

# Largest request body the API parses; larger ones are a 413 before parsing.
MAX_REQUEST_BODY_BYTES = int(os.environ.get("MAX_REQUEST_BODY_BYTES", str(1024 * 1024)))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["service.tenants.auth.APIKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["service.tenants.permissions.TenantRolePermission"],
    "DEFAULT_PARSER_CLASSES": ["service.tenants.api.parsers.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["service.tenants.throttling.APIKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": os.environ.get("API_KEY_RATE", "6000/min")},
    "DEFAULT_PAGINATION_CLASS": "service.tenants.api.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "service.tenants.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Interlock API",
    "DESCRIPTION": "Tenants' routing, health-check and autoscaling policy for Envoy and proxyless gRPC.",
    "VERSION": "v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One name for the health states (a verdict's `health`, a region's `state`).
    "ENUM_NAME_OVERRIDES": {"HealthEnum": "service.health.models.Health"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}
