"""Scheduled cleanup: keep session rows true and the token and rate-limit tables small.

API Gateway's ``$disconnect`` is best effort, so rows can stay ``connected`` after the socket is
gone. No connection outlives API Gateway's 2-hour maximum, so older rows are marked disconnected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from . import contract
from .conf import ws_settings
from .models import RateLimitWindow, WebSocketSession, WebSocketToken


@dataclass(frozen=True)
class CleanupResult:
    expired_sessions: int
    deleted_sessions: int
    deleted_tokens: int
    deleted_rate_limits: int


def cleanup(now: datetime | None = None) -> CleanupResult:
    """Run every cleanup step once. Each step is one statement; safe to run concurrently."""
    now = now or timezone.now()
    max_age = now - timedelta(seconds=contract.MAX_CONNECTION_SECONDS)
    expired = WebSocketSession.objects.filter(connected_at__lt=max_age).mark_closed(now)
    session_cutoff = now - timedelta(seconds=float(ws_settings.DISCONNECTED_SESSION_RETENTION))
    deleted_sessions, _ = WebSocketSession.objects.filter(
        connected=False, disconnected_at__lt=session_cutoff
    ).delete()
    token_cutoff = now - timedelta(seconds=float(ws_settings.TOKEN_RETENTION))
    deleted_tokens, _ = WebSocketToken.objects.filter(
        Q(expires_at__lt=token_cutoff) | Q(used_at__lt=token_cutoff)
    ).delete()
    window_cutoff = now - timedelta(seconds=float(ws_settings.RATE_LIMIT_RETENTION))
    deleted_windows, _ = RateLimitWindow.objects.filter(window_end__lt=window_cutoff).delete()
    return CleanupResult(expired, deleted_sessions, deleted_tokens, deleted_windows)
