"""The prebuilt session statements (statements.py) and the transaction ``$connect`` runs in."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_aws_api_gateway_websockets import statements
from django_aws_api_gateway_websockets.exceptions import Forbidden
from django_aws_api_gateway_websockets.models import (
    RateLimitWindow,
    WebSocketSession,
    WebSocketToken,
)
from django_aws_api_gateway_websockets.testing import GatewayClient, new_connection_id
from django_aws_api_gateway_websockets.tokens import hash_token, mint_token
from tests.views import ChatView


def _session(gateway, user=None, **values) -> WebSocketSession:
    now = timezone.now()
    fields = {
        "connection_id": new_connection_id(),
        "gateway_id": gateway.pk,
        "channel_name": "lobby",
        "state": WebSocketSession.State.CONNECTING,
        "connected": True,
        "user_id": user.pk if user else None,
        "source_ip": "2001:db8::1",
        "user_agent": "test",
        "connected_at": now,
        "last_seen_at": now,
        "disconnected_at": None,
        **values,
    }
    return WebSocketSession(**fields)


def test_upsert_inserts_then_overwrites_the_same_connection(gateway, user):
    session = _session(gateway, user)
    statements.upsert_session(session)
    assert session.pk is not None and not session._state.adding
    again = _session(gateway, None, connection_id=session.connection_id, channel_name="other")
    statements.upsert_session(again)
    row = WebSocketSession.objects.get(connection_id=session.connection_id)
    assert (row.channel_name, row.user_id, row.source_ip) == ("other", None, "2001:db8::1")
    assert WebSocketSession.objects.count() == 1
    if connection.features.can_return_rows_from_bulk_insert:
        assert again.pk == session.pk == row.pk


def test_upsert_falls_back_to_bulk_create_when_the_sql_cannot_be_reused(gateway, monkeypatch):
    monkeypatch.setattr(statements, "_build_upsert", lambda db, alias: None)
    statements._built.clear()
    try:
        session = _session(gateway)
        statements.upsert_session(session)
        assert WebSocketSession.objects.filter(connection_id=session.connection_id).exists()
    finally:
        statements._built.clear()


def test_lookup_returns_the_session_with_its_user_in_one_query(gateway, user):
    session = _session(gateway, user)
    statements.upsert_session(session)
    with CaptureQueriesContext(connection) as queries:
        found = statements.find_connected_session(session.connection_id, gateway.pk)
        assert found is not None
        assert found.user == user and found.user.is_active
        assert found.connected_at == session.connected_at
        assert found.state == WebSocketSession.State.CONNECTING and found.connected is True
    assert len(queries) == 1


def test_lookup_falls_back_to_the_orm_when_it_cannot_be_prebuilt(gateway, user, monkeypatch):
    """A user model with multi-table inheritance spans several tables: the ORM joins them."""
    monkeypatch.setattr(statements, "_build_lookup", lambda db: None)
    statements._built.clear()
    try:
        session = _session(gateway, user)
        statements.upsert_session(session)
        with CaptureQueriesContext(connection) as queries:
            found = statements.find_connected_session(session.connection_id, gateway.pk)
            assert found is not None and found.user == user
        assert len(queries) == 1
        assert statements.find_connected_session("unknown", gateway.pk) is None
    finally:
        statements._built.clear()


def test_lookup_of_an_anonymous_session_has_no_user(gateway):
    session = _session(gateway)
    statements.upsert_session(session)
    found = statements.find_connected_session(session.connection_id, gateway.pk)
    assert found is not None and found.user is None


def test_lookup_ignores_closed_sessions_and_other_gateways(gateway):
    session = _session(gateway)
    statements.upsert_session(session)
    assert statements.find_connected_session(session.connection_id, gateway.pk + 1) is None
    assert statements.close_session(session.connection_id, gateway.pk, timezone.now()) == 1
    assert statements.find_connected_session(session.connection_id, gateway.pk) is None
    assert statements.close_session(session.connection_id, gateway.pk, timezone.now()) == 0
    row = WebSocketSession.objects.get(pk=session.pk)
    assert (row.connected, row.state) == (False, WebSocketSession.State.CLOSED)
    assert row.disconnected_at is not None


# $connect in one transaction ---------------------------------------------------------------------


def _count(key: str) -> int:
    return sum(RateLimitWindow.objects.filter(key=key).values_list("count", flat=True))


def test_refusal_after_the_token_still_spends_it_and_counts_the_attempt(gateway, user):
    """A refusal inside the $connect transaction commits what ran before it, as when each
    statement committed on its own."""
    token = mint_token(user).token
    ws = GatewayClient(Client(), gateway, source_ip="203.0.113.77")
    response = ws.connect(token=token, query={"channel": "staff-only"})
    assert response.status_code == 403
    assert WebSocketToken.objects.get(token_hash=hash_token(token)).used_at is not None
    assert _count("connect:ip:203.0.113.77") == 1
    assert _count(f"connect:user:{user.pk}") == 1
    assert not WebSocketSession.objects.exists()
    assert ws.connect(token=token).status_code == 401, "spent"


@pytest.mark.django_db(transaction=True)  # no test transaction around it: the real commit path
def test_an_error_inside_connect_rolls_the_whole_connect_back(gateway, user, monkeypatch):
    def broken(self, request, channel_name):
        raise RuntimeError("bug in a permission hook")

    monkeypatch.setattr(ChatView, "has_channel_permission", broken)
    token = mint_token(user).token
    ws = GatewayClient(Client(raise_request_exception=True), gateway, source_ip="203.0.113.78")
    with pytest.raises(RuntimeError):
        ws.connect(token=token)
    spent = WebSocketToken.objects.get(token_hash=hash_token(token)).used_at
    if connection.vendor in statements.ONE_COMMIT_VENDORS:
        assert spent is None
        assert _count("connect:ip:203.0.113.78") == 0
    else:
        # MySQL/MariaDB commit each $connect statement on its own (the rate-limit upsert must be
        # free to retry after an InnoDB deadlock): what ran before the error stays, as before.
        assert spent is not None
        assert _count("connect:ip:203.0.113.78") == 1
    assert not WebSocketSession.objects.exists()


def test_connect_transaction_reraises_the_refusal(db):
    with pytest.raises(Forbidden), statements.connect_transaction("default"):
        raise Forbidden("no")
