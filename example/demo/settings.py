"""Settings of the demo chat. Everything that differs between "on a laptop" and "on AWS" is an
environment variable, read here and nowhere else:

``DEMO_LOCAL_GATEWAY_URL``
    The local API Gateway (default ``http://127.0.0.1:4510``). Set it to an empty string to
    use the real AWS API of the ``demo`` ApiGateway record instead (see docs/example.rst).
``DEMO_DATABASE``
    SQLite file (default ``example/db.sqlite3``).
``DEMO_GATEWAY_SECRET``
    The secret the gateway sends with every event (a fixed value for the local demo).
``DEMO_KEEP_ALIVE_SECONDS`` / ``DEMO_MAX_CONNECTION_SECONDS``
    The JavaScript client's keep-alive interval and connection lifetime (the tests shorten them).
"""

import os
from pathlib import Path

from django_aws_api_gateway_websockets import contract

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DEMO_SECRET_KEY", "demo-only-not-secret-0123456789abcdefghijkl")
DEBUG = os.environ.get("DEMO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", *os.environ.get("DEMO_HOSTS", "").split()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_aws_api_gateway_websockets",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo.urls"
WSGI_APPLICATION = "demo.wsgi.application"
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

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DATABASE", str(BASE_DIR / "db.sqlite3")),
        # The gateway calls Django concurrently: wait for SQLite's write lock, don't fail.
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;",
        },
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "/static/"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "room"
LOGOUT_REDIRECT_URL = "login"

GATEWAY_SECRET = os.environ.get("DEMO_GATEWAY_SECRET", "demo-gateway-secret-0123456789abcdef")
AWS_API_GATEWAY_WEBSOCKETS = {
    "GATEWAY_SECRETS": [GATEWAY_SECRET],
    "LOCAL_GATEWAY_URL": os.environ.get("DEMO_LOCAL_GATEWAY_URL", "http://127.0.0.1:4510"),
    # A browser reconnecting in a loop (tests, restarts) should not hit the default limits.
    "CONNECT_LIMIT_PER_USER": 300,
    "TOKEN_MINT_LIMIT": 300,
}

#: What the page's client is told (the defaults stay below API Gateway's limits).
DEMO_KEEP_ALIVE_SECONDS = int(
    os.environ.get("DEMO_KEEP_ALIVE_SECONDS", contract.IDLE_TIMEOUT_SECONDS // 2)
)
DEMO_MAX_CONNECTION_SECONDS = int(
    os.environ.get("DEMO_MAX_CONNECTION_SECONDS", contract.MAX_CONNECTION_SECONDS - 300)
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_aws_api_gateway_websockets": {"handlers": ["console"], "level": "INFO"}},
}
