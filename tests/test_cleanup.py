"""The ``cleanup_websockets`` management command."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command, load_command_class
from django.utils import timezone

from django_aws_api_gateway_websockets.cleanup import cleanup
from django_aws_api_gateway_websockets.models import (
    RateLimitWindow,
    WebSocketSession,
    WebSocketToken,
)
from django_aws_api_gateway_websockets.testing import new_connection_id
from django_aws_api_gateway_websockets.tokens import hash_token
from tests.helpers import ws_settings

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


def _run() -> str:
    out = io.StringIO()
    call_command("cleanup_websockets", stdout=out)
    return out.getvalue()


def _session(gateway, *, age: timedelta, connected: bool = True, gone: timedelta | None = None):
    now = timezone.now()
    return WebSocketSession.objects.create(
        connection_id=new_connection_id(),
        gateway=gateway,
        channel_name="lobby",
        connected=connected,
        state="open" if connected else "closed",
        connected_at=now - age,
        last_seen_at=now - age,
        disconnected_at=None if gone is None else now - gone,
    )


def _token(name: str, *, created: timedelta, lifetime=timedelta(seconds=60), used=None):
    now = timezone.now()
    return WebSocketToken.objects.create(
        token_hash=hash_token(name),
        created_at=now - created,
        expires_at=now - created + lifetime,
        used_at=None if used is None else now - used,
    )


def _window(key: str, *, ended: timedelta) -> RateLimitWindow:
    end = timezone.now() - ended
    return RateLimitWindow.objects.create(
        key=key, window_start=end - timedelta(seconds=60), window_end=end, count=3
    )


def test_help_text_exists():
    command = load_command_class("django_aws_api_gateway_websockets", "cleanup_websockets")
    assert "2-hour" in command.help
    assert "cron" in command.help
    parser = command.create_parser("manage.py", "cleanup_websockets")
    assert parser.description == command.help
    assert "Safe to run from cron" in " ".join(parser.format_help().split())


def test_nothing_to_do():
    out = _run()
    assert "Marked 0 session(s)" in out
    assert "Deleted 0 disconnected session(s), 0 token(s) and 0 rate-limit window(s)." in out


def test_sessions_older_than_two_hours_are_marked_disconnected(gateway):
    stale = _session(gateway, age=2 * HOUR + timedelta(minutes=1))
    young = _session(gateway, age=2 * HOUR - timedelta(minutes=1))
    before = timezone.now()
    out = _run()
    assert "Marked 1 session(s) past the maximum connection duration disconnected." in out
    stale.refresh_from_db()
    young.refresh_from_db()
    assert stale.connected is False and stale.disconnected_at >= before
    assert young.connected is True and young.disconnected_at is None
    # Marked now, so kept for the retention period, not deleted in the same run.
    assert WebSocketSession.objects.count() == 2
    assert "Deleted 0 disconnected session(s)" in out


def test_disconnected_sessions_older_than_retention_are_deleted(gateway):
    old = _session(gateway, age=30 * HOUR, connected=False, gone=25 * HOUR)
    recent = _session(gateway, age=30 * HOUR, connected=False, gone=23 * HOUR)
    connected = _session(gateway, age=timedelta(minutes=5))
    out = _run()
    assert "Deleted 1 disconnected session(s)" in out
    remaining = set(WebSocketSession.objects.values_list("pk", flat=True))
    assert remaining == {recent.pk, connected.pk}
    assert old.pk not in remaining


def test_session_retention_setting(gateway):
    _session(gateway, age=HOUR, connected=False, gone=timedelta(minutes=2))
    kept = _session(gateway, age=HOUR, connected=False, gone=timedelta(seconds=10))
    with ws_settings(DISCONNECTED_SESSION_RETENTION=60):
        assert "Deleted 1 disconnected session(s)" in _run()
    assert list(WebSocketSession.objects.values_list("pk", flat=True)) == [kept.pk]


def test_used_and_expired_tokens_past_retention_are_deleted(db):
    _token("used-long-ago", created=2 * HOUR, used=2 * HOUR - timedelta(seconds=30))
    _token("expired-long-ago", created=3 * HOUR)
    used_recently = _token(
        "used-recently", created=timedelta(minutes=10), used=timedelta(minutes=9)
    )
    expired_recently = _token("expired-recently", created=timedelta(minutes=30))
    fresh = _token("fresh", created=timedelta(seconds=5))
    out = _run()
    assert "2 token(s)" in out
    remaining = set(WebSocketToken.objects.values_list("pk", flat=True))
    assert remaining == {used_recently.pk, expired_recently.pk, fresh.pk}


def test_token_retention_setting(db):
    _token("expired-two-minutes-ago", created=timedelta(minutes=3))
    fresh = _token("fresh", created=timedelta(seconds=5))
    with ws_settings(TOKEN_RETENTION=60):
        assert "1 token(s)" in _run()
    assert list(WebSocketToken.objects.values_list("pk", flat=True)) == [fresh.pk]


def test_old_rate_limit_windows_are_deleted(db):
    _window("connect:ip:old", ended=HOUR + timedelta(minutes=1))
    recent = _window("connect:ip:recent", ended=timedelta(minutes=59))
    current = _window("connect:ip:current", ended=-timedelta(seconds=30))
    out = _run()
    assert "1 rate-limit window(s)." in out
    assert set(RateLimitWindow.objects.values_list("pk", flat=True)) == {recent.pk, current.pk}


def test_rate_limit_retention_setting(db):
    _window("old", ended=timedelta(minutes=2))
    with ws_settings(RATE_LIMIT_RETENTION=60):
        assert "1 rate-limit window(s)." in _run()
    assert RateLimitWindow.objects.count() == 0


def test_full_run_counts(gateway):
    _session(gateway, age=3 * HOUR)
    _session(gateway, age=4 * HOUR)
    _session(gateway, age=48 * HOUR, connected=False, gone=47 * HOUR)
    _token("a", created=5 * HOUR)
    _window("w", ended=5 * HOUR)
    out = _run()
    assert out.splitlines() == [
        "Marked 2 session(s) past the maximum connection duration disconnected.",
        "Deleted 1 disconnected session(s), 1 token(s) and 1 rate-limit window(s).",
    ]
    assert WebSocketSession.objects.filter(connected=True).count() == 0
    assert WebSocketSession.objects.count() == 2


def test_cleanup_is_idempotent(gateway):
    _session(gateway, age=3 * HOUR)
    first = cleanup()
    second = cleanup()
    assert first.expired_sessions == 1
    assert (second.expired_sessions, second.deleted_sessions, second.deleted_tokens) == (0, 0, 0)
