"""Races that only a database with real concurrent writers can show (the PostgreSQL and
MariaDB passes of CI).

Each test starts real threads together behind a barrier (:func:`tests.concurrency.race`); every
thread has its own database connection, so the statements really run side by side, and closes it
when done. SQLite serialises every write on one file lock and the in-memory test database cannot
be shared between connections, so these tests are deselected there (see ``conftest.py``).
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse

from django_aws_api_gateway_websockets.models import (
    RateLimitWindow,
    WebSocketSession,
    WebSocketToken,
)
from django_aws_api_gateway_websockets.testing import GatewayClient, new_connection_id
from django_aws_api_gateway_websockets.tokens import mint_token
from tests.concurrency import race


def concurrent_race(func):
    """Run only on a server database (PostgreSQL, MariaDB), with committed data visible to
    every thread."""
    return pytest.mark.concurrent(pytest.mark.django_db(transaction=True)(func))


#: A window far longer than a test run, so a race never straddles two fixed windows.
LONG_WINDOW = 24 * 60 * 60


def _ws_settings(**overrides: object) -> dict:
    return {"GATEWAY_SECRETS": [settings.GATEWAY_SECRET], **overrides}


def _assert_clean(result) -> None:
    assert not result.errors, "\n".join(result.errors)
    assert all(r is not None for r in result.results), "a task returned nothing"
    assert 500 not in result.statuses(), Counter(result.statuses())
    # The threads really overlapped; a serial run would prove nothing about races.
    assert result.peak_in_flight > 1, result


@concurrent_race
def test_running_on_a_server_database():
    assert connection.vendor in {"postgresql", "mysql"}, connection.vendor


def test_backend_matches_the_requested_database():
    """Not marked ``concurrent``: if the PostgreSQL or MariaDB pass silently fell back to
    SQLite, the marked tests would be deselected without a trace; this one fails instead."""
    wanted = os.environ.get("DAGW_TEST_DATABASE", "sqlite")
    assert connection.vendor == {"postgresql": "postgresql", "mysql": "mysql"}.get(
        wanted, "sqlite"
    ), connection.vendor


@concurrent_race
def test_one_token_many_connects_exactly_one_wins(gateway, user):
    token = mint_token(user).token
    count = 64

    def prepare(i: int) -> GatewayClient:
        # A different source IP per attempt: the per-IP limit (failed attempts count too) must
        # not be what stops the winner.
        return GatewayClient(Client(), gateway, path="/ws/", source_ip=f"198.51.100.{i + 1}")

    def task(i: int, ws: GatewayClient):
        return ws.connect(token=token)

    result = race(count, task, prepare=prepare, threads=count)
    _assert_clean(result)
    assert result.threads == count
    statuses = Counter(result.statuses())
    assert statuses == {200: 1, 401: count - 1}, statuses
    assert WebSocketSession.objects.count() == 1
    session = WebSocketSession.objects.get()
    assert session.user_id == user.pk and session.connected
    record = WebSocketToken.objects.get()
    assert record.used_at is not None


@concurrent_race
def test_parallel_connects_from_one_ip_respect_the_limit(gateway):
    count, limit, ip = 100, 20, "203.0.113.77"
    ws_conf = _ws_settings(CONNECT_LIMIT_PER_IP=limit, CONNECT_WINDOW=LONG_WINDOW)

    def prepare(i: int) -> GatewayClient:
        return GatewayClient(Client(), gateway, path="/public/", source_ip=ip)

    def task(i: int, ws: GatewayClient):
        return ws.connect()

    with override_settings(AWS_API_GATEWAY_WEBSOCKETS=ws_conf):
        result = race(count, task, prepare=prepare)
    _assert_clean(result)
    statuses = Counter(result.statuses())
    assert set(statuses) <= {200, 429}, statuses
    assert statuses[200] <= limit, statuses
    assert statuses[200] == limit, statuses  # nothing else can refuse these requests
    assert statuses[429] == count - limit, statuses
    assert WebSocketSession.objects.count() == statuses[200]
    window = RateLimitWindow.objects.get(key=f"connect:ip:{ip}")
    assert window.count == count


@concurrent_race
def test_parallel_token_mints_respect_the_limit(user):
    count, limit = 50, 10
    url = reverse("django_aws_api_gateway_websockets:token")
    ws_conf = _ws_settings(TOKEN_MINT_LIMIT=limit, TOKEN_MINT_WINDOW=LONG_WINDOW)

    def prepare(i: int) -> Client:
        client = Client()
        client.force_login(user)
        return client

    def task(i: int, client: Client):
        return client.post(url)

    with override_settings(AWS_API_GATEWAY_WEBSOCKETS=ws_conf):
        result = race(count, task, prepare=prepare)
    _assert_clean(result)
    statuses = Counter(result.statuses())
    assert statuses == {200: limit, 429: count - limit}, statuses
    tokens = {r.json()["token"] for r in result.results if r.status_code == 200}
    assert len(tokens) == limit
    assert WebSocketToken.objects.filter(user=user).count() == limit
    assert WebSocketToken.objects.count() == limit
    assert RateLimitWindow.objects.get(key=f"token:user:{user.pk}").count == count


@concurrent_race
def test_same_connection_id_connecting_in_parallel_is_one_row(gateway, user):
    count = 20
    connection_id = new_connection_id()
    tokens = [mint_token(user).token for _ in range(count)]

    def prepare(i: int) -> GatewayClient:
        return GatewayClient(Client(), gateway, path="/ws/", source_ip=f"192.0.2.{i + 1}")

    def task(i: int, ws: GatewayClient):
        return ws.connect(token=tokens[i], connection_id=connection_id, channel=f"room-{i}")

    result = race(count, task, prepare=prepare)
    _assert_clean(result)
    statuses = Counter(result.statuses())
    assert statuses == {200: count}, statuses
    assert WebSocketSession.objects.count() == 1
    session = WebSocketSession.objects.get(connection_id=connection_id)
    assert session.connected and session.user_id == user.pk
    # The row holds one of the attempts in full, not a mix of several.
    assert session.channel_name in {f"room-{i}" for i in range(count)}
    assert session.source_ip == f"192.0.2.{int(session.channel_name.split('-')[1]) + 1}"
    assert WebSocketToken.objects.filter(used_at__isnull=False).count() == count
