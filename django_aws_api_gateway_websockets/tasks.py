"""Background broadcasts on Django's tasks framework (``django.tasks`` on Django 6.0+, the
``django-tasks`` backport on 5.2). Any worker-backed backend runs them: ``django-tasks-db``,
Celery through ``django-tasks-celery``, or another.

A broadcast is recorded as a :class:`~.models.Broadcast` and split into batches of
``TASK_BATCH_SIZE`` session ids, each a :class:`~.models.BroadcastBatch` row and a separate task,
so several workers (on several machines) share it. Each task claims its batch with one
conditional ``UPDATE`` (a task the queue delivers twice sends nothing the second time), sends,
and stores its outcome on the row; the last batch to finish stamps the broadcast finished and
sends :data:`~.signals.broadcast_finished` with the combined report. The message travels as the
text it will be sent as, so it is serialised and size-checked once, when it is enqueued.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import router, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from . import signals
from .conf import ws_settings
from .sending import connected_values, encode, send_message

try:  # Django 6.0+
    from django.tasks import task
except ImportError:  # pragma: no cover - depends on the Django version
    try:
        from django_tasks import task  # type: ignore[no-redef]
    except ImportError:
        task = None  # type: ignore[assignment]


class BatchNotFound(RuntimeError):
    """The task's batch row is not in the database (yet): enqueued inside an open transaction
    that a fast worker outran. Enqueue from ``transaction.on_commit()``."""


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _claim(broadcast_id: int, batch_index: int) -> Any:
    """Mark the batch running if it is still queued; returns the row, or ``None`` if another
    delivery of this task has already claimed it."""
    from .models import BroadcastBatch

    batches = BroadcastBatch.objects.db_manager(router.db_for_write(BroadcastBatch))
    claimed = batches.filter(
        broadcast_id=broadcast_id, index=batch_index, state=BroadcastBatch.State.QUEUED
    ).update(state=BroadcastBatch.State.RUNNING, started_at=timezone.now(), worker=_worker_name())
    batch = batches.filter(broadcast_id=broadcast_id, index=batch_index).first()
    if batch is None:
        raise BatchNotFound(f"broadcast {broadcast_id} has no batch {batch_index}")
    return batch if claimed else None


def _settle(batch: Any, outcome: dict[str, Any] | None, error: str = "") -> None:
    """Store the batch's outcome; the broadcast's last batch stamps it finished."""
    from .models import Broadcast, BroadcastBatch

    db = batch._state.db
    fields: dict[str, Any] = {"finished_at": timezone.now(), "error": error}
    if outcome is None:
        fields["state"] = BroadcastBatch.State.ERROR
    else:
        fields.update(outcome, state=BroadcastBatch.State.DONE)
    BroadcastBatch.objects.using(db).filter(pk=batch.pk).update(**fields)
    broadcasts = Broadcast.objects.using(db).filter(pk=batch.broadcast_id)
    broadcasts.update(batches_finished=F("batches_finished") + 1)
    done = broadcasts.filter(batches_finished__gte=F("batches"), finished_at=None).update(
        finished_at=timezone.now()
    )
    if done:  # exactly one batch's task gets here
        broadcast = broadcasts.get()
        signals.broadcast_finished.send(
            sender=Broadcast, broadcast=broadcast, report=broadcast.report()
        )


def send_message_task(
    session_ids: list[int],
    message: str,
    broadcast_id: int | None = None,
    batch_index: int | None = None,
) -> dict[str, Any]:
    """Send ``message`` to the given sessions that are still connected; return the report.

    Recipients still opening are waited for (at most ``PENDING_DELIVERY_TIMEOUT``), so the task
    result says whether they got the message. With ``broadcast_id`` the outcome is also stored
    on the batch, and a second delivery of the same task returns the stored outcome unsent.
    """
    from .models import WebSocketSession

    batch = None
    if broadcast_id is not None and batch_index is not None:
        batch = _claim(broadcast_id, batch_index)
        if batch is None:
            from .models import BroadcastBatch

            stored = BroadcastBatch.objects.get(broadcast_id=broadcast_id, index=batch_index)
            return stored.as_report()
    try:
        report = send_message(WebSocketSession.objects.filter(pk__in=session_ids), message)
        report.wait_pending()
    except Exception as exc:
        if batch is not None:
            _settle(batch, None, error=f"{type(exc).__name__}: {exc}")
        raise
    outcome = {
        "sent": len(report.sent),
        "gone": report.gone,
        "failed": report.failed,
        "pending_delivered": report.pending_delivered,
        "pending_undelivered": report.pending_undelivered,
        "retried": report.retried,
        "duration": report.duration,
    }
    if batch is not None:
        _settle(batch, outcome)
    return outcome


if task is not None:
    # Bound to its own module-level name: workers import the task by this dotted path. The
    # decorated object is a Task, not the function mypy saw defined above.
    _as_task = task(backend=ws_settings.TASK_BACKEND)
    send_message_task = _as_task(send_message_task)  # type: ignore[assignment]


class EnqueuedBroadcast(list[Any]):
    """The enqueued task results (one per batch), with :attr:`broadcast`, the record whose
    :meth:`~.models.Broadcast.report` combines them (``None`` when nobody was connected)."""

    broadcast: Any = None

    def report(self) -> dict[str, Any] | None:
        """The combined report, read fresh from the database."""
        if self.broadcast is None:
            return None
        self.broadcast.refresh_from_db()
        report: dict[str, Any] = self.broadcast.report()
        return report


def enqueue_send(sessions: QuerySet[Any], data: Any) -> EnqueuedBroadcast:
    """Enqueue a broadcast of ``data`` to ``sessions``; returns the enqueued task results."""
    from .models import Broadcast, BroadcastBatch

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
    size = int(ws_settings.TASK_BATCH_SIZE)
    batches: list[list[int]] = [[]]
    for (pk,) in connected_values(sessions, "pk"):
        if len(batches[-1]) >= size:
            batches.append([])
        batches[-1].append(pk)
    results = EnqueuedBroadcast()
    if not batches[0]:
        return results
    db = router.db_for_write(Broadcast)
    # The batch rows are committed before any task is enqueued, so a fast worker finds them.
    with transaction.atomic(using=db):
        broadcast = Broadcast.objects.using(db).create(
            recipients=sum(len(batch) for batch in batches), batches=len(batches)
        )
        BroadcastBatch.objects.using(db).bulk_create(
            BroadcastBatch(broadcast=broadcast, index=index, size=len(batch))
            for index, batch in enumerate(batches)
        )
    results.broadcast = broadcast
    queued: Any = send_message_task
    queued = queued.using(backend=ws_settings.TASK_BACKEND)
    # All batches or none, when the task backend stores tasks in this database.
    with transaction.atomic(using=sessions.db):
        for index, batch in enumerate(batches):
            results.append(queued.enqueue(batch, message, broadcast.pk, index))
    return results
