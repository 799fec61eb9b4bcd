"""Projects with ``USE_TZ = False``: Django hands out naive datetimes in local time (``TIME_ZONE``).

GetConnection's ``lastActiveAt`` is UTC; it must be turned into the project's own kind of
datetime before it meets ``last_seen_at``, or probing crashes comparing naive and aware values.
The whole suite also runs with ``DAGW_TEST_USE_TZ=0`` in CI; these tests check the paths that
crashed in every run, under ``override_settings(USE_TZ=False)``.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test.utils import override_settings
from django.utils import timezone

from django_aws_api_gateway_websockets import presence, sending
from django_aws_api_gateway_websockets.cleanup import cleanup
from django_aws_api_gateway_websockets.models import WebSocketSession
from tests.helpers import LOCAL_TRANSPORT, last_active, make_sessions
from tests.management_api import ManagementApiServer

ZONE = "America/Chicago"  # far from UTC: a missed conversion shows as hours, not microseconds


@pytest.fixture
def naive(db) -> Iterator[None]:
    with override_settings(USE_TZ=False, TIME_ZONE=ZONE):
        yield


@pytest.fixture
def fake(naive, local) -> ManagementApiServer:
    """The fake Management API, sent to through the local gateway transport, naive datetimes."""
    return local


def make_session(gateway, fake=None, *, idle: timedelta, age: timedelta | None = None):
    assert timezone.is_naive(timezone.now())
    (session,) = make_sessions(gateway, 1, fake, idle=idle, age=age or idle)
    return session


def test_parse_time_gives_naive_local_time(naive):
    parsed = sending._parse_time("2024-01-02T03:04:05.678Z")
    assert parsed == dt.datetime(2024, 1, 1, 21, 4, 5, 678000)  # Chicago is UTC-6 in January
    epoch = sending._parse_time(1704164645.678)
    assert epoch is not None and timezone.is_naive(epoch)
    assert abs((epoch - parsed).total_seconds()) < 0.001


def test_is_connected_moves_last_seen_forward(fake, gateway):
    session = make_session(gateway, fake, idle=timedelta(hours=1))
    expected = last_active(fake, session.connection_id, 30)
    assert session.is_connected() is True
    assert session.last_seen_at == expected
    session.refresh_from_db()
    assert session.last_seen_at == expected


def test_is_connected_for_a_gone_connection(fake, gateway):
    session = make_session(gateway, fake, idle=timedelta(hours=1))
    fake.remove_connection(session.connection_id)
    assert session.is_connected() is False
    session.refresh_from_db()
    assert not session.connected and timezone.is_naive(session.disconnected_at)


def test_reconcile_and_its_command(fake, gateway):
    live = make_session(gateway, fake, idle=timedelta(minutes=30))
    gone = make_session(gateway, fake, idle=timedelta(minutes=30))
    fake.remove_connection(gone.connection_id)
    expected = last_active(fake, live.connection_id, 60)

    report = presence.reconcile()
    assert report.sent == [live.connection_id] and report.gone == [gone.connection_id]
    live.refresh_from_db()
    assert live.last_seen_at == expected

    again = make_session(gateway, fake, idle=timedelta(minutes=20))
    out = io.StringIO()
    call_command("reconcile_websockets", stdout=out)
    # live was active a minute ago (its lastActiveAt), so only the new one is probed
    assert out.getvalue().startswith("Probed 1 session(s): 1 still connected")
    again.refresh_from_db()
    assert again.connected


def test_cleanup_and_its_command(naive, gateway):
    old = make_session(gateway, idle=timedelta(hours=3))
    fresh = make_session(gateway, idle=timedelta(minutes=1))
    result = cleanup()
    assert result.expired_sessions == 1
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert not old.connected and fresh.connected
    out = io.StringIO()
    call_command("cleanup_websockets", stdout=out)
    assert "Marked 0 session(s)" in out.getvalue()


def test_the_connect_window_with_naive_datetimes(fake, gateway):
    young = make_session(gateway, idle=timedelta(seconds=2))
    fake.add_connecting(young.connection_id)
    old = make_session(gateway, idle=timedelta(minutes=5))
    with override_settings(
        AWS_API_GATEWAY_WEBSOCKETS={
            **settings.AWS_API_GATEWAY_WEBSOCKETS,
            "TRANSPORT": LOCAL_TRANSPORT,
            "TRANSPORT_OPTIONS": {"endpoint_url": fake.url},
            "PENDING_DELIVERY_TIMEOUT": 0,
        }
    ):
        report = WebSocketSession.objects.broadcast("x")
    assert report.pending == [young.connection_id]
    assert report.gone == [old.connection_id]
