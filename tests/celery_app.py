"""The Celery app of the sharded-broadcast tests: Redis on 127.0.0.1:6379 as broker and result
store, one queue per test run (``DAGW_CELERY_QUEUE``) so parallel runs never take each other's
tasks. Workers start with ``celery -A tests.celery_app worker``."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings_celery")

REDIS_URL = os.environ.get("DAGW_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("DAGW_CELERY_QUEUE", "dagw-tests")

app = Celery("dagw_tests")
app.conf.update(
    broker_url=REDIS_URL,
    result_backend=REDIS_URL,
    result_extended=True,
    result_expires=600,
    task_default_queue=QUEUE,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


def _setup_django() -> None:
    import django

    django.setup()


_setup_django()
# As a project's Celery app does: finds django_aws_api_gateway_websockets.tasks, whose task is
# created on TASK_BACKEND and so registered with this app by django-tasks-celery.
app.autodiscover_tasks()
