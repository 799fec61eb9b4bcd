"""Background broadcasts on Django's tasks framework (``django.tasks`` on Django 6.0+, the
``django-tasks`` backport on 5.2). Any worker-backed backend runs them, e.g. ``django-tasks-db``.

A broadcast is split into tasks of ``TASK_BATCH_SIZE`` session ids each; the message travels as
the text it will be sent as, so it is serialised and size-checked once, when it is enqueued.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import QuerySet

from .conf import ws_settings
from .sending import connected_values, encode, send_message

try:  # Django 6.0+
    from django.tasks import task
except ImportError:  # pragma: no cover - depends on the Django version
    try:
        from django_tasks import task  # type: ignore[no-redef]
    except ImportError:
        task = None  # type: ignore[assignment]


def send_message_task(session_ids: list[int], message: str) -> dict[str, Any]:
    """Send ``message`` to the given sessions that are still connected; return the report.

    Recipients still opening are waited for (at most ``PENDING_DELIVERY_TIMEOUT``), so the task
    result says whether they got the message.
    """
    from .models import WebSocketSession

    report = send_message(WebSocketSession.objects.filter(pk__in=session_ids), message)
    report.wait_pending()
    return {
        "sent": len(report.sent),
        "gone": report.gone,
        "failed": report.failed,
        "pending_delivered": report.pending_delivered,
        "pending_undelivered": report.pending_undelivered,
        "retried": report.retried,
        "duration": report.duration,
    }


if task is not None:
    # Bound to its own module-level name: workers import the task by this dotted path.
    send_message_task = task(backend=ws_settings.TASK_BACKEND)(send_message_task)


def enqueue_send(sessions: QuerySet[Any], data: Any) -> list[Any]:
    """Enqueue a broadcast of ``data`` to ``sessions``; returns the enqueued task results."""
    if task is None:
        raise ImproperlyConfigured(
            "Background sending needs Django's tasks framework: Django 6.0+, or "
            "'pip install django-tasks' on Django 5.2."
        )
    payload = encode(data)
    try:
        message = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("Background messages must be text (UTF-8).") from None
    queued = send_message_task.using(backend=ws_settings.TASK_BACKEND)
    size = int(ws_settings.TASK_BATCH_SIZE)
    results, batch = [], []
    # All batches or none, when the task backend stores tasks in this database.
    with transaction.atomic(using=sessions.db):
        for (pk,) in connected_values(sessions, "pk"):
            batch.append(pk)
            if len(batch) >= size:
                results.append(queued.enqueue(batch, message))
                batch = []
        if batch:
            results.append(queued.enqueue(batch, message))
    return results
