"""Settings for the test suite. ``DAGW_TEST_DATABASE=postgresql`` runs it on PostgreSQL,
``DAGW_TEST_DATABASE=mysql`` on MariaDB/MySQL; ``DAGW_TEST_USE_TZ=0`` runs it with
``USE_TZ = False`` (naive local datetimes).

Every run has a second alias, ``other``, and a router that sends nothing there by default;
``tests/test_routers.py`` points the package's models at it to prove that every query the package
makes (tokens, rate limits, sessions) follows the router."""

import os

import django

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = os.environ.get("DAGW_TEST_USE_TZ", "1") != "0"
# A zone far from UTC, so that naive local time and UTC cannot be confused by accident.
TIME_ZONE = "America/Chicago" if not USE_TZ else "UTC"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.urls"
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_aws_api_gateway_websockets",
    "django_tasks_db",
    "tests",
]
if django.VERSION < (6, 0):
    INSTALLED_APPS.insert(-2, "django_tasks")  # the backport of django.tasks

# Background broadcasts run on a real worker-backed backend (``manage.py db_worker``).
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# The full stack a Django 5.1+ site may run, LoginRequiredMiddleware included: the package's
# views must work behind it (API Gateway has no login session).
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

_DATABASE = os.environ.get("DAGW_TEST_DATABASE", "sqlite")
_DB_NAME = os.environ.get("DAGW_DB_NAME") or os.environ.get("DAGW_PG_NAME", "dagw")
if _DATABASE == "postgresql":
    _server = {
        "ENGINE": "django.db.backends.postgresql",
        "USER": os.environ.get("DAGW_PG_USER", "postgres"),
        "HOST": os.environ.get("DAGW_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("DAGW_PG_PORT", "5432"),
        "CONN_MAX_AGE": 0,
    }
    DATABASES = {
        "default": {**_server, "NAME": _DB_NAME},
        "other": {**_server, "NAME": f"{_DB_NAME}_other"},
    }
elif _DATABASE == "mysql":
    _server = {
        "ENGINE": "django.db.backends.mysql",
        "USER": os.environ.get("DAGW_MYSQL_USER", "root"),
        "PASSWORD": os.environ.get("DAGW_MYSQL_PASSWORD", ""),
        "HOST": os.environ.get("DAGW_MYSQL_HOST", "127.0.0.1"),
        "PORT": os.environ.get("DAGW_MYSQL_PORT", "3306"),
        "CONN_MAX_AGE": 0,
        "OPTIONS": {"charset": "utf8mb4"},
        "TEST": {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"},
    }
    DATABASES = {
        "default": {**_server, "NAME": _DB_NAME},
        "other": {**_server, "NAME": f"{_DB_NAME}_other"},
    }
elif _DATABASE == "sqlite":
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    }
else:
    raise RuntimeError(f"DAGW_TEST_DATABASE={_DATABASE!r}: use sqlite, postgresql or mysql")

DATABASE_ROUTERS = ["tests.routers.PackageRouter"]

GATEWAY_SECRET = "test-gateway-secret-0123456789abcdef"
AWS_API_GATEWAY_WEBSOCKETS = {
    "GATEWAY_SECRETS": [GATEWAY_SECRET],
}
