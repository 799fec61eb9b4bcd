"""Findings of the outside review that need no live server (issue 6, section 3)."""

from __future__ import annotations

import logging

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from django_aws_api_gateway_websockets import ratelimits
from django_aws_api_gateway_websockets.client_ip import client_ip, parse_ip
from django_aws_api_gateway_websockets.models import RateLimitWindow, WebSocketSession
from django_aws_api_gateway_websockets.testing import GatewayClient
from django_aws_api_gateway_websockets.throttling import ip_key
from django_aws_api_gateway_websockets.tokens import TokenRejected, consume_token, mint_token
from tests.helpers import ws_settings

pytestmark = pytest.mark.django_db


# 1. IPv6 rate limits by prefix ----------------------------------------------------------------


def test_rotating_addresses_inside_one_64_share_the_connect_limit(gateway):
    statuses = []
    with ws_settings(CONNECT_LIMIT_PER_IP=3):
        for host in range(1, 7):
            ws = GatewayClient(
                Client(), gateway, path="/public/", source_ip=f"2001:db8:1:2::{host:x}"
            )
            statuses.append(ws.connect().status_code)
    assert statuses == [200, 200, 200, 429, 429, 429]
    assert RateLimitWindow.objects.count() == 1  # not a row per rotated address


def test_another_64_has_its_own_budget(gateway):
    with ws_settings(CONNECT_LIMIT_PER_IP=1):
        first = GatewayClient(Client(), gateway, path="/public/", source_ip="2001:db8:1:2::1")
        second = GatewayClient(Client(), gateway, path="/public/", source_ip="2001:db8:1:3::1")
        assert first.connect().status_code == 200
        assert second.connect().status_code == 200


@pytest.mark.parametrize(
    ("prefix", "address", "key"),
    [
        (64, "2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        (56, "2001:db8:1:2ff::1", "2001:db8:1:200::/56"),
        (128, "2001:db8::1", "2001:db8::1/128"),
        (64, "::ffff:198.51.100.7", "198.51.100.7"),
        (64, "198.51.100.7", "198.51.100.7"),
    ],
)
def test_ip_key(prefix, address, key):
    with ws_settings(IPV6_RATE_LIMIT_PREFIX=prefix):
        assert ip_key(address) == key


# 2. The token endpoint client address -----------------------------------------------------------


class _Request:
    def __init__(self, **meta: str) -> None:
        self.META = meta


@pytest.mark.parametrize(
    ("settings", "meta", "expected"),
    [
        ({}, {"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "1.2.3.4"}, "10.0.0.5"),
        # Behind an ALB: the last entry is what the load balancer saw; the rest is forgeable.
        (
            {"TRUSTED_PROXY_COUNT": 1},
            {"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 198.51.100.7"},
            "198.51.100.7",
        ),
        # CloudFront, then an ALB: two trusted hops.
        (
            {"TRUSTED_PROXY_COUNT": 2},
            {"HTTP_X_FORWARDED_FOR": "6.6.6.6, 198.51.100.7, 130.176.0.1"},
            "198.51.100.7",
        ),
        ({"TRUSTED_PROXY_COUNT": 2}, {"HTTP_X_FORWARDED_FOR": "198.51.100.7"}, None),
        (
            {"CLIENT_IP_HEADER": "CloudFront-Viewer-Address"},
            {"HTTP_CLOUDFRONT_VIEWER_ADDRESS": "198.51.100.7:46532"},
            "198.51.100.7",
        ),
        (
            {"CLIENT_IP_HEADER": "CloudFront-Viewer-Address"},
            {"HTTP_CLOUDFRONT_VIEWER_ADDRESS": "2001:db8::7:46532"},
            "2001:db8::7",
        ),
        ({"TRUSTED_PROXY_COUNT": 1}, {"HTTP_X_FORWARDED_FOR": "not-an-ip"}, None),
    ],
)
def test_client_ip(settings, meta, expected):
    with ws_settings(**settings):
        assert client_ip(_Request(**meta)) == expected


def test_parse_ip_forms():
    assert parse_ip("[2001:db8::1]:443") == "2001:db8::1"
    assert parse_ip(" 198.51.100.7 ") == "198.51.100.7"
    assert parse_ip("fe80::1%eth0") is None


def _mint_anonymous(client: Client, forwarded_for: str) -> int:
    return client.post(
        "/websockets/token/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR=forwarded_for
    ).status_code


def test_visitors_behind_a_load_balancer_get_their_own_mint_budget(gateway):
    with ws_settings(TOKEN_MINT_LIMIT=2, TRUSTED_PROXY_COUNT=1):
        client = Client()
        alice = [_mint_anonymous(client, "198.51.100.1") for _ in range(3)]
        bob = [_mint_anonymous(client, "198.51.100.2") for _ in range(2)]
        # A forged X-Forwarded-For prefix does not give alice a fresh bucket.
        forged = _mint_anonymous(client, "203.0.113.99, 198.51.100.1")
    assert alice == [200, 200, 429]
    assert bob == [200, 200]
    assert forged == 429


def test_without_trusted_proxies_everyone_behind_one_proxy_shares_remote_addr(gateway):
    with ws_settings(TOKEN_MINT_LIMIT=2):
        client = Client()
        statuses = [_mint_anonymous(client, f"198.51.100.{n}") for n in range(3)]
    assert statuses == [200, 200, 429]


def test_anonymous_mint_with_an_unknown_client_address_is_refused(gateway):
    with ws_settings(TRUSTED_PROXY_COUNT=1):
        response = Client().post("/websockets/token/", REMOTE_ADDR="10.0.0.5")
    assert response.status_code == 400


# 13. SQLite without RETURNING ---------------------------------------------------------------------


@pytest.fixture
def no_returning(monkeypatch):
    monkeypatch.setattr(connection.features, "can_return_columns_from_insert", False)


@pytest.mark.sqlite
def test_tokens_stay_single_use_without_returning(no_returning, user):
    minted = mint_token(user)
    with CaptureQueriesContext(connection) as queries:
        assert consume_token(minted.token) == user.pk
    assert not any("RETURNING" in q["sql"] for q in queries)
    with pytest.raises(TokenRejected):
        consume_token(minted.token)


@pytest.mark.sqlite
def test_rate_limits_count_exactly_without_returning(no_returning):
    limit = ratelimits.Limit("k", 2, 60)
    with CaptureQueriesContext(connection) as queries:
        ratelimits.hit([limit])
    assert not any("RETURNING" in q["sql"] for q in queries)
    ratelimits.hit([limit])
    with pytest.raises(ratelimits.RateLimited):
        ratelimits.hit([limit])
    assert RateLimitWindow.objects.get().count == 3


@pytest.mark.sqlite
def test_old_sqlite_is_reported_by_a_system_check(no_returning):
    from django_aws_api_gateway_websockets.checks import check_database_features

    assert [m.id for m in check_database_features(databases=["default"])] == ["dagw.W014"]


# 14. The token never reaches a log line ----------------------------------------------------------


def test_no_log_line_records_the_token(gateway, user, caplog):
    caplog.set_level(logging.DEBUG)
    tokens = [mint_token(user).token for _ in range(3)]
    ws = GatewayClient(Client(), gateway, path="/ws/")
    assert ws.connect(token=tokens[0]).status_code == 200
    # Refused: reused, and on a view that requires a signed-in user.
    assert GatewayClient(Client(), gateway).connect(token=tokens[0]).status_code == 401
    assert (
        GatewayClient(Client(), gateway, path="/audience/").connect(token=tokens[1]).status_code
        == 401
    )
    with ws_settings(CONNECT_LIMIT_PER_IP=1):
        assert GatewayClient(Client(), gateway).connect(token=tokens[2]).status_code == 429
    text = "\n".join(
        record.getMessage() + repr(record.args) + repr(record.__dict__.get("request", ""))
        for record in caplog.records
    )
    assert caplog.records  # the refusals were logged ...
    for token in tokens:
        assert token not in text  # ... without the token
    assert WebSocketSession.objects.count() == 1
