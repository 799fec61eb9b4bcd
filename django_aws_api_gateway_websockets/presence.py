"""Who is connected, and keeping that answer true.

Rows say ``connected=True`` until ``$disconnect`` arrives, but API Gateway sends ``$disconnect``
best effort. Three things keep presence honest: gone connections found while sending are marked
disconnected (:mod:`.sending`), the cleanup command retires rows past the 2-hour maximum, and
:func:`reconcile` asks API Gateway about rows that have been quiet for a while.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from . import contract
from .models import WebSocketSession
from .sending import DeliveryReport, probe_connections, record_last_active


@dataclass(frozen=True)
class ChannelPresence:
    channel_name: str
    #: Connected sessions in the channel (a lazy queryset).
    sessions: QuerySet[WebSocketSession]
    #: Primary keys of the distinct signed-in users among them.
    user_ids: list[Any]
    connection_count: int

    @property
    def user_count(self) -> int:
        return len(self.user_ids)


def channel_presence(channel_name: str) -> ChannelPresence:
    """Connected sessions and distinct users in ``channel_name`` (two queries)."""
    sessions = WebSocketSession.objects.filter(channel_name=channel_name, connected=True)
    user_ids = list(
        sessions.exclude(user=None).order_by().values_list("user_id", flat=True).distinct()
    )
    return ChannelPresence(channel_name, sessions, user_ids, sessions.count())


def suspicious_sessions(
    idle_seconds: float = contract.IDLE_TIMEOUT_SECONDS, now: datetime | None = None
) -> QuerySet[WebSocketSession]:
    """Connected sessions with no inbound message for ``idle_seconds`` (default: API Gateway's
    10-minute idle timeout, after which a quiet connection may well have been closed)."""
    now = now or timezone.now()
    return WebSocketSession.objects.filter(
        connected=True, last_seen_at__lt=now - timedelta(seconds=idle_seconds)
    )


def reconcile(sessions: QuerySet[WebSocketSession] | None = None) -> DeliveryReport:
    """Probe ``sessions`` (default: :func:`suspicious_sessions`) with GetConnection, concurrently.

    Gone connections are marked disconnected; live ones get ``last_seen_at`` from AWS's
    ``lastActiveAt``. Returns the report of the probe.
    """
    if sessions is None:
        sessions = suspicious_sessions()
    report, answers = probe_connections(sessions)
    record_last_active(answers)
    return report
