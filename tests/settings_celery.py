"""Settings for the Celery leg: the test suite's settings with the ``celery`` task backend
(``django-tasks-celery``) next to the database one, and, in a worker subprocess, outbound calls
to the fake Management API at ``DAGW_WORKER_TRANSPORT_URL`` capped at ``DAGW_WORKER_MAX_RATE``
sends per second (the worker's share of the account's rate limit)."""

import importlib.util
import os

from tests.settings import *  # noqa: F403
from tests.settings import GATEWAY_SECRET, TASKS

# django-tasks-celery needs Django 6.0+ and Python 3.12+; the database backend works everywhere.
if importlib.util.find_spec("django_tasks_celery") is not None:
    TASKS = {
        **TASKS,
        "celery": {
            "BACKEND": "django_tasks_celery.CeleryBackend",
            "OPTIONS": {"CELERY_APP": "tests.celery_app.app"},
        },
    }

if os.environ.get("DAGW_WORKER_TRANSPORT_URL"):
    _rate = os.environ.get("DAGW_WORKER_MAX_RATE", "")
    AWS_API_GATEWAY_WEBSOCKETS = {
        "GATEWAY_SECRETS": [GATEWAY_SECRET],
        "TRANSPORT": "django_aws_api_gateway_websockets.transports.aws.LocalGatewayTransport",
        "TRANSPORT_OPTIONS": {
            "endpoint_url": os.environ["DAGW_WORKER_TRANSPORT_URL"],
            "max_rate": float(_rate) if _rate else None,
        },
        "TASK_BACKEND": os.environ.get("DAGW_WORKER_TASK_BACKEND", "default"),
        "TASK_BATCH_SIZE": int(os.environ.get("DAGW_WORKER_BATCH_SIZE", "5000")),
    }
