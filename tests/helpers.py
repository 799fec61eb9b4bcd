"""Small helpers shared by the test modules."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.dispatch import Signal
from django.test import override_settings
from django.utils import timezone

from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession
from django_aws_api_gateway_websockets.testing import new_connection_id
from tests.management_api import ManagementApiServer


def ws_settings(**overrides: object) -> override_settings:
    """``override_settings`` for some keys of the package's settings dict, keeping the rest."""
    return override_settings(
        AWS_API_GATEWAY_WEBSOCKETS={**settings.AWS_API_GATEWAY_WEBSOCKETS, **overrides}
    )


@contextmanager
def receiver(signal: Signal) -> Iterator[list[dict]]:
    """Collect the keyword arguments of every ``signal`` sent inside the block."""
    calls: list[dict] = []

    def record(**kwargs: object) -> None:
        calls.append(kwargs)

    signal.connect(record, weak=False)
    try:
        yield calls
    finally:
        signal.disconnect(record)


LOCAL_TRANSPORT = "django_aws_api_gateway_websockets.transports.aws.LocalGatewayTransport"
#: Sessions are made as connected a minute ago, well after their $connect returned.
SETTLED = timedelta(minutes=1)


def transport(path: str = LOCAL_TRANSPORT, **options: object) -> override_settings:
    """Send through the transport ``path`` with ``options`` (keeping the rest of the settings)."""
    return ws_settings(TRANSPORT=path, TRANSPORT_OPTIONS=options)


def make_sessions(
    gateway: ApiGateway,
    count: int,
    server: ManagementApiServer | None = None,
    *,
    channel: str = "lobby",
    user: object = None,
    connected: bool = True,
    idle: timedelta = timedelta(0),
    age: timedelta = SETTLED,
) -> list[WebSocketSession]:
    """Session rows, ``age`` old (settled, past the connect window, by default) and quiet for
    ``idle``; with ``server``, each is also a live connection on the fake Management API."""
    now = timezone.now()
    sessions = WebSocketSession.objects.bulk_create(
        WebSocketSession(
            connection_id=new_connection_id(),
            gateway=gateway,
            channel_name=channel,
            user=user,
            connected=connected,
            state="open" if connected else "closed",
            connected_at=now - max(age, idle),
            last_seen_at=now - idle,
            disconnected_at=None if connected else now,
        )
        for _ in range(count)
    )
    if server is not None:
        for session in sessions:
            server.add_connection(session.connection_id)
    return sessions


def last_active(server: ManagementApiServer, connection_id: str, seconds_ago: int) -> datetime:
    """Set the fake's ``lastActiveAt`` (exact in milliseconds); returns it as Django would
    store it: aware UTC, or naive local time with ``USE_TZ = False``."""
    stamp = float(int(time.time()) - seconds_ago) + 0.125
    server.connections[connection_id].last_active_at = stamp
    when = datetime.fromtimestamp(stamp, dt_timezone.utc)
    return when if settings.USE_TZ else timezone.make_naive(when)


def worker_database_env(alias: str = "default") -> dict[str, str]:
    """Environment for a worker subprocess (``tests.settings``) on this run's test database,
    already created and migrated: PostgreSQL or MariaDB, whichever the suite runs on."""
    from django.db import connections

    db = connections[alias].settings_dict
    vendor = connections[alias].vendor
    if vendor == "postgresql":
        return {
            "DAGW_TEST_DATABASE": "postgresql",
            "DAGW_DB_NAME": db["NAME"],
            "DAGW_PG_USER": db["USER"],
            "DAGW_PG_HOST": db["HOST"],
            "DAGW_PG_PORT": str(db["PORT"]),
        }
    if vendor == "mysql":
        return {
            "DAGW_TEST_DATABASE": "mysql",
            "DAGW_DB_NAME": db["NAME"],
            "DAGW_MYSQL_USER": db["USER"],
            "DAGW_MYSQL_PASSWORD": db["PASSWORD"],
            "DAGW_MYSQL_HOST": db["HOST"],
            "DAGW_MYSQL_PORT": str(db["PORT"]),
        }
    raise RuntimeError(f"a worker subprocess cannot share a {vendor} test database")
