"""Throttling (429): back-off defaults, ``Retry-After``, and a send rate shared across processes.

Against the fake Management API over real HTTP. Timings are only ever lower bounds here (a wait
that must have happened), never speed targets.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections import Counter
from email.utils import formatdate

import pytest
from django.test.utils import override_settings

from django_aws_api_gateway_websockets.testing import new_connection_id
from django_aws_api_gateway_websockets.transports import POST, Outcome, Target, get_transport
from django_aws_api_gateway_websockets.transports import aws as aws_transport
from django_aws_api_gateway_websockets.transports.aws import (
    LocalGatewayTransport,
    ManagementApiTransport,
    SharedQuota,
    retry_after,
)
from django_aws_api_gateway_websockets.transports.http import Response
from tests.helpers import transport
from tests.management_api import ManagementApiServer


def connections(server: ManagementApiServer, count: int) -> list[str]:
    ids = [new_connection_id() for _ in range(count)]
    for connection_id in ids:
        server.add_connection(connection_id)
    return ids


def send(server: ManagementApiServer, ids: list[str], payload: bytes = b"hi", **options):
    with transport(endpoint_url=server.url, **options):
        return get_transport().call(POST, Target(server.url, "eu-west-1"), ids, payload=payload)


# -- defaults -------------------------------------------------------------------------------------


def test_defaults_retry_a_throttled_recipient_for_several_seconds(monkeypatch):
    """Like the AWS SDKs' standard mode, the back-off ceiling grows to 20 s; eight attempts
    from 50 ms keep a throttled recipient in play for up to ~12.7 s (about 6 s on average with
    full jitter), not the 1.5 s the earlier defaults gave up after."""
    active = ManagementApiTransport()
    assert (active.max_attempts, active.base_backoff, active.max_backoff) == (8, 0.05, 20.0)
    monkeypatch.setattr(aws_transport.random, "uniform", lambda low, high: high)
    ceilings = [active.backoff(attempt) for attempt in range(1, active.max_attempts)]
    assert ceilings == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4])
    assert sum(ceilings) > 10
    assert active.backoff(20) == 20.0, "capped by max_backoff"


def test_seven_throttled_answers_are_still_delivered_with_the_defaults(server):
    (connection_id,) = connections(server, 1)
    server.fail(connection_id, 429, times=7)
    (result,) = send(server, [connection_id], base_backoff=0.001)
    assert (result.outcome, result.attempts) == (Outcome.OK, 8)
    assert server.received[connection_id] == [b"hi"]
    assert server.status_counts[429] == 7


def test_throttled_past_max_attempts_fails_with_the_throttling_code(server):
    (connection_id,) = connections(server, 1)
    server.fail(connection_id, 429, times=3)
    (result,) = send(server, [connection_id], base_backoff=0.001, max_attempts=3)
    assert (result.outcome, result.reason, result.attempts) == (
        Outcome.FAILED,
        "LimitExceededException",
        3,
    )


# -- Retry-After ----------------------------------------------------------------------------------


def test_retry_after_parsing():
    now = 1_445_412_475.0  # Wed, 21 Oct 2015 07:27:55 GMT
    answer = lambda value: Response(429, {"retry-after": value}, b"")  # noqa: E731
    assert retry_after(answer("2")) == 2.0
    assert retry_after(answer("0.5")) == 0.5
    assert retry_after(answer("-3")) == 0.0
    assert retry_after(answer("Wed, 21 Oct 2015 07:28:00 GMT"), now=now) == 5.0
    assert retry_after(answer("Wed, 21 Oct 2015 07:27:00 GMT"), now=now) == 0.0  # in the past
    assert retry_after(answer("soon")) is None
    assert retry_after(Response(429, {}, b"")) is None
    assert retry_after(None) is None


def test_retry_after_seconds_is_waited_for(server):
    """With a 1 ms back-off the retry would come at once; the server asked for a second."""
    (connection_id,) = connections(server, 1)
    server.fail(connection_id, 429, times=1, retry_after="1")
    started = time.monotonic()
    (result,) = send(server, [connection_id], base_backoff=0.001)
    assert time.monotonic() - started >= 1.0
    assert (result.outcome, result.attempts) == (Outcome.OK, 2)


def test_retry_after_http_date_is_waited_for(server):
    (connection_id,) = connections(server, 1)
    when = formatdate(time.time() + 2, usegmt=True)  # whole seconds: at least 1 s from now
    server.fail(connection_id, 429, times=1, retry_after=when)
    started = time.monotonic()
    (result,) = send(server, [connection_id], base_backoff=0.001)
    assert time.monotonic() - started >= 0.9
    assert result.outcome is Outcome.OK


def test_retry_after_is_capped_by_max_backoff(server):
    (connection_id,) = connections(server, 1)
    server.fail(connection_id, 429, times=1, retry_after="3600")
    started = time.monotonic()
    (result,) = send(server, [connection_id], base_backoff=0.001, max_backoff=0.2)
    assert time.monotonic() - started < 60, "an hour's Retry-After was not capped"
    assert result.outcome is Outcome.OK


def test_429_without_retry_after_uses_jittered_backoff(server, monkeypatch):
    waits: list[float] = []
    real = ManagementApiTransport.backoff

    def spy(self, attempt, hint=None):
        waits.append(hint)
        return real(self, attempt, hint)

    monkeypatch.setattr(ManagementApiTransport, "backoff", spy)
    (connection_id,) = connections(server, 1)
    server.fail(connection_id, 429, times=2)
    (result,) = send(server, [connection_id], base_backoff=0.001)
    assert result.outcome is Outcome.OK
    assert waits == [None, None]


# -- max_rate is per process; shared_rate is for the fleet ----------------------------------------


def _fleet_send(server: ManagementApiServer, cache: dict, rate: int, per_process: int):
    """Two transports (two "processes") send at once; returns the second each send was granted
    in by the shared quota (when it left is that second, give or take scheduling)."""
    granted: list[int] = []
    lock = threading.Lock()
    real_acquire = SharedQuota.acquire

    async def recording(self, loop):
        window = await real_acquire(self, loop)
        with lock:
            granted.append(window)
        return window

    ids = connections(server, 2 * per_process)
    target = Target(server.url, "eu-west-1")
    results: list = []
    with override_settings(CACHES={"default": cache}):
        fleet = [
            LocalGatewayTransport(endpoint_url=server.url, max_rate=rate, shared_rate="default")
            for _ in range(2)
        ]
        SharedQuota.acquire = recording
        try:
            threads = [
                threading.Thread(
                    target=lambda t=t, part=part: results.extend(
                        t.call(POST, target, part, payload=b"q")
                    )
                )
                for t, part in zip(fleet, (ids[:per_process], ids[per_process:]), strict=True)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        finally:
            SharedQuota.acquire = real_acquire
    assert len(results) == len(ids)
    assert all(r.outcome is Outcome.OK for r in results)
    assert len(granted) == len(ids)
    return granted


def test_shared_rate_holds_the_sum_of_two_processes_under_max_rate(server):
    rate, per_process = 20, 30
    cache = {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": f"shared-rate-{uuid.uuid4()}",
    }
    stamps = _fleet_send(server, cache, rate, per_process)
    per_second = Counter(stamps)
    # Each process alone may send 20/s; together they must not either: 60 sends span at least
    # three wall-clock seconds (without sharing, about 40 would leave in the first one).
    assert max(per_second.values()) <= rate, per_second
    assert len(per_second) >= 3, per_second
    assert server.stats()["messages"] == 2 * per_process


def _redis_reachable() -> bool:
    try:
        import redis  # noqa: F401
    except ImportError:
        return False
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _redis_reachable(), reason="no Redis server on 127.0.0.1:6379")
def test_shared_rate_through_redis(server):
    rate, per_process = 20, 30
    cache = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/15",
        "KEY_PREFIX": f"dagw-test-{uuid.uuid4()}",
    }
    stamps = _fleet_send(server, cache, rate, per_process)
    per_second = Counter(stamps)
    assert max(per_second.values()) <= rate, per_second
    assert len(per_second) >= 3


def test_shared_rate_needs_max_rate():
    with pytest.raises(ValueError, match="max_rate"):
        ManagementApiTransport(max_rate=None, shared_rate="default")


def test_shared_rate_falls_back_to_max_rate_when_the_cache_fails(server, caplog):
    broken = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
    }
    ids = connections(server, 3)
    with override_settings(CACHES={"default": broken}):
        active = LocalGatewayTransport(endpoint_url=server.url, max_rate=100, shared_rate="default")
        results = active.call(POST, Target(server.url, "eu-west-1"), ids, payload=b"x")
    assert all(r.outcome is Outcome.OK for r in results)
    assert "Shared send quota unavailable" in caplog.text
