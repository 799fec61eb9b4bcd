"""Fixed-window rate limits on ``$connect`` (per source IP, per user) and ``ratelimits.hit``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client, override_settings

from django_aws_api_gateway_websockets import ratelimits
from django_aws_api_gateway_websockets.exceptions import RateLimited
from django_aws_api_gateway_websockets.models import RateLimitWindow, WebSocketSession
from django_aws_api_gateway_websockets.ratelimits import Limit
from django_aws_api_gateway_websockets.testing import GatewayClient
from django_aws_api_gateway_websockets.tokens import mint_token
from tests.helpers import ws_settings

pytestmark = pytest.mark.django_db

#: Longer than any test run, so a test never straddles two fixed windows.
LONG = 86400
#: A window boundary for every window length used below (60 and 3600 divide it).
#: Naive (local time) when the suite runs with ``USE_TZ = False``, as Django's datetimes are then.
T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=timezone.utc if settings.USE_TZ else None)


def _ws_settings(**overrides: object) -> override_settings:
    return ws_settings(**{"CONNECT_WINDOW": LONG, **overrides})


def _connect(gateway, user, *, ip: str = "203.0.113.10", path: str = "/ws/", **kwargs):
    ws = GatewayClient(Client(), gateway, path=path, source_ip=ip)
    token = kwargs.pop("token", None) or (mint_token(user).token if user else None)
    return ws.connect(token=token, **kwargs)


def _count(key: str) -> int:
    return sum(RateLimitWindow.objects.filter(key=key).values_list("count", flat=True))


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user(username="bob", password="pw")


# $connect ----------------------------------------------------------------------------------------


def test_per_ip_connect_limit(gateway, user, bob):
    with _ws_settings(CONNECT_LIMIT_PER_IP=2, CONNECT_LIMIT_PER_USER=0):
        first = _connect(gateway, user)
        second = _connect(gateway, bob)
        third = _connect(gateway, user)
        elsewhere = _connect(gateway, bob, ip="198.51.100.1")
    assert [first.status_code, second.status_code, third.status_code] == [200, 200, 429]
    assert 1 <= int(third["Retry-After"]) <= LONG
    assert third.json()["error"]
    assert elsewhere.status_code == 200
    assert WebSocketSession.objects.count() == 3
    assert _count("connect:ip:203.0.113.10") == 3


def test_per_user_connect_limit(gateway, user, bob):
    with _ws_settings(CONNECT_LIMIT_PER_IP=0, CONNECT_LIMIT_PER_USER=2):
        statuses = [_connect(gateway, user, ip=f"198.51.100.{n}").status_code for n in range(3)]
        other_user = _connect(gateway, bob, ip="198.51.100.1")
    assert statuses == [200, 200, 429]
    assert other_user.status_code == 200
    assert WebSocketSession.objects.filter(user=user).count() == 2
    assert WebSocketSession.objects.filter(user=bob).count() == 1
    assert _count(f"connect:user:{user.pk}") == 3


def test_anonymous_connections_have_no_user_limit(gateway):
    with _ws_settings(CONNECT_LIMIT_PER_IP=0, CONNECT_LIMIT_PER_USER=1):
        statuses = [_connect(gateway, None, path="/public/").status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    assert WebSocketSession.objects.count() == 3


def test_ip_limit_applies_to_views_without_tokens(gateway):
    with _ws_settings(CONNECT_LIMIT_PER_IP=1, CONNECT_LIMIT_PER_USER=0):
        statuses = [_connect(gateway, None, path="/public/").status_code for _ in range(2)]
    assert statuses == [200, 429]
    assert WebSocketSession.objects.count() == 1


def test_failed_token_attempts_count_against_the_ip(gateway, user):
    with _ws_settings(CONNECT_LIMIT_PER_IP=2, CONNECT_LIMIT_PER_USER=0):
        bad = [_connect(gateway, None, token="not-a-token").status_code for _ in range(2)]
        good = _connect(gateway, user)
    assert bad == [401, 401]
    assert good.status_code == 429
    assert WebSocketSession.objects.count() == 0
    assert _count("connect:ip:203.0.113.10") == 3


def test_refused_attempts_still_count(gateway, user):
    with _ws_settings(CONNECT_LIMIT_PER_IP=2, CONNECT_LIMIT_PER_USER=0):
        statuses = [_connect(gateway, user).status_code for _ in range(5)]
    assert statuses == [200, 200, 429, 429, 429]
    assert _count("connect:ip:203.0.113.10") == 5
    assert WebSocketSession.objects.count() == 2


def test_channel_refusals_count_against_the_ip(gateway, user):
    with _ws_settings(CONNECT_LIMIT_PER_IP=1, CONNECT_LIMIT_PER_USER=0):
        refused = _connect(gateway, user, channel="staff-only")
        after = _connect(gateway, user)
    assert (refused.status_code, after.status_code) == (403, 429)
    assert WebSocketSession.objects.count() == 0


def test_anonymous_token_refusals_count_against_the_ip(gateway, user):
    with _ws_settings(CONNECT_LIMIT_PER_IP=1, CONNECT_LIMIT_PER_USER=0):
        refused = _connect(gateway, None, token=mint_token(None).token)
        after = _connect(gateway, user)
    assert (refused.status_code, after.status_code) == (401, 429)
    assert WebSocketSession.objects.count() == 0


def test_limit_zero_disables_connect_limits(gateway, user):
    with _ws_settings(CONNECT_LIMIT_PER_IP=0, CONNECT_LIMIT_PER_USER=0):
        statuses = [_connect(gateway, user).status_code for _ in range(5)]
    assert statuses == [200] * 5
    assert RateLimitWindow.objects.count() == 0


def test_ip_and_user_limits_are_counted_in_one_query(gateway, user, django_assert_num_queries):
    token = mint_token(user).token
    _connect(gateway, user)  # loads the gateway cache
    ws = GatewayClient(Client(), gateway)
    # consume the token, count both limits, write the session. MySQL/MariaDB have no RETURNING:
    # the token's winner reads its owner back, and the counts are read back after the upsert.
    with django_assert_num_queries(5 if connection.vendor == "mysql" else 3):
        assert ws.connect(token=token).status_code == 200
    keys = set(RateLimitWindow.objects.values_list("key", flat=True))
    assert keys == {"connect:ip:203.0.113.10", f"connect:user:{user.pk}"}


# ratelimits.hit ----------------------------------------------------------------------------------


def test_hit_raises_after_the_limit_with_retry_after():
    limit = Limit("k", 2, 60)
    ratelimits.hit([limit], T0)
    ratelimits.hit([limit], T0 + timedelta(seconds=10))
    with pytest.raises(RateLimited) as refused:
        ratelimits.hit([limit], T0 + timedelta(seconds=20))
    assert refused.value.retry_after == 40
    assert refused.value.status_code == 429
    assert refused.value.as_response()["Retry-After"] == "40"


def test_window_resets_in_the_next_window():
    limit = Limit("k", 2, 60)
    for seconds in (0, 30):
        ratelimits.hit([limit], T0 + timedelta(seconds=seconds))
    with pytest.raises(RateLimited) as refused:
        ratelimits.hit([limit], T0 + timedelta(seconds=59.5))
    assert refused.value.retry_after == 1
    ratelimits.hit([limit], T0 + timedelta(seconds=60))
    ratelimits.hit([limit], T0 + timedelta(seconds=119))
    with pytest.raises(RateLimited):
        ratelimits.hit([limit], T0 + timedelta(seconds=119.9))
    windows = list(RateLimitWindow.objects.order_by("window_start").values_list("count", flat=True))
    assert windows == [3, 3]
    first = RateLimitWindow.objects.order_by("window_start").first()
    assert first.window_start == T0 and first.window_end == T0 + timedelta(seconds=60)


def test_refused_hits_are_still_counted():
    limit = Limit("k", 1, 60)
    ratelimits.hit([limit], T0)
    for _ in range(4):
        with pytest.raises(RateLimited):
            ratelimits.hit([limit], T0)
    assert RateLimitWindow.objects.get(key="k").count == 5


def test_keys_are_counted_separately():
    ratelimits.hit([Limit("a", 1, 60)], T0)
    ratelimits.hit([Limit("b", 1, 60)], T0)
    with pytest.raises(RateLimited):
        ratelimits.hit([Limit("a", 1, 60)], T0)
    assert dict(RateLimitWindow.objects.values_list("key", "count")) == {"a": 2, "b": 1}


def test_any_exceeded_limit_refuses_and_all_are_counted():
    loose, tight = Limit("loose", 10, 60), Limit("tight", 1, 60)
    ratelimits.hit([loose, tight], T0)
    with pytest.raises(RateLimited):
        ratelimits.hit([loose, tight], T0)
    assert dict(RateLimitWindow.objects.values_list("key", "count")) == {"loose": 2, "tight": 2}


def test_limit_zero_disables_and_writes_nothing():
    for _ in range(5):
        ratelimits.hit([Limit("off", 0, 60)], T0)
    assert RateLimitWindow.objects.count() == 0


def test_window_bounds_align_to_the_window():
    start, end = ratelimits.window_bounds(T0 + timedelta(seconds=3599), 3600)
    assert (start, end) == (T0, T0 + timedelta(seconds=3600))
