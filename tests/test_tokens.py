"""The token endpoint and single-use WebSocket tokens."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from django_aws_api_gateway_websockets import discovery
from django_aws_api_gateway_websockets.models import WebSocketSession, WebSocketToken
from django_aws_api_gateway_websockets.testing import GatewayClient
from django_aws_api_gateway_websockets.tokens import TokenRejected, consume_token, mint_token
from tests.helpers import ws_settings

pytestmark = pytest.mark.django_db

CSRF_SECRET = "abcdefghijklmnopqrstuvwxyzABCDEF"  # 32 characters, Django's unmasked format
NO_ANONYMOUS_URLS = override_settings(ROOT_URLCONF="tests.urls_noanon")


@pytest.fixture
def url() -> str:
    return reverse("django_aws_api_gateway_websockets:token")


@pytest.fixture
def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# Minting -----------------------------------------------------------------------------------------


def test_url_is_under_the_included_prefix(url):
    assert url == "/websockets/token/"


def test_logged_in_user_gets_a_token(browser, url, user):
    response = browser.post(url)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"token", "expires_in"}
    assert body["expires_in"] == 60
    record = WebSocketToken.objects.get()
    assert record.user == user
    assert record.used_at is None
    assert record.expires_at - record.created_at == timedelta(seconds=60)
    assert "no-store" in response["Cache-Control"]


def test_token_lifetime_setting(browser, url):
    with ws_settings(TOKEN_LIFETIME=15):
        assert browser.post(url).json()["expires_in"] == 15
    record = WebSocketToken.objects.get()
    assert record.expires_at - record.created_at == timedelta(seconds=15)


def test_token_has_at_least_128_bits_and_is_url_safe(browser, url):
    tokens = {browser.post(url).json()["token"] for _ in range(5)}
    assert len(tokens) == 5
    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]+", token), token
        assert len(token) * 6 >= 128


def test_only_a_sha256_hash_is_stored(browser, url):
    token = browser.post(url).json()["token"]
    record = WebSocketToken.objects.get()
    assert record.token_hash == hashlib.sha256(token.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {WebSocketToken._meta.db_table}")
        rows = cursor.fetchall()
    assert len(rows) == 1
    assert all(token not in str(value) for value in rows[0])
    assert token not in str(record)


def test_minted_token_opens_a_connection(browser, url, gateway, user):
    token = browser.post(url).json()["token"]
    ws = GatewayClient(Client(), gateway)
    assert ws.connect(token=token).status_code == 200
    assert WebSocketSession.objects.get().user == user


def test_csrf_is_enforced(user, url):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(url).status_code == 403
    assert WebSocketToken.objects.count() == 0
    client.cookies[settings.CSRF_COOKIE_NAME] = CSRF_SECRET
    assert client.post(url, HTTP_X_CSRFTOKEN="wrong" * 8).status_code == 403
    assert WebSocketToken.objects.count() == 0
    response = client.post(url, HTTP_X_CSRFTOKEN=CSRF_SECRET)
    assert response.status_code == 200, response.content
    assert WebSocketToken.objects.count() == 1


def test_csrf_is_enforced_for_anonymous_minting(url):
    client = Client(enforce_csrf_checks=True)
    assert client.post(url).status_code == 403
    assert WebSocketToken.objects.count() == 0


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_methods_other_than_post_are_405(browser, url, method):
    assert getattr(browser, method)(url).status_code == 405
    assert WebSocketToken.objects.count() == 0


def test_inactive_user_never_gets_a_token_of_their_own(browser, url, user):
    user.is_active = False
    user.save()
    # Django's session auth drops inactive users: at most an anonymous token is minted.
    response = browser.post(url)
    assert response.status_code == 200
    assert WebSocketToken.objects.get().user is None
    with NO_ANONYMOUS_URLS:
        assert browser.post(url).status_code == 401
    assert WebSocketToken.objects.count() == 1


def test_inactive_user_gets_401_even_if_a_backend_lets_them_in(url, user):
    backend = "django.contrib.auth.backends.AllowAllUsersModelBackend"
    user.is_active = False
    user.save()
    with override_settings(AUTHENTICATION_BACKENDS=[backend]):
        client = Client()
        client.force_login(user, backend=backend)
        response = client.post(url)
        assert response.wsgi_request.user == user  # really authenticated as the inactive user
        assert response.status_code == 401
    assert WebSocketToken.objects.count() == 0


# Anonymous minting -------------------------------------------------------------------------------


def test_anonymous_minting_is_allowed_when_a_view_allows_anonymous(url, gateway):
    discovery.anonymous_tokens_allowed.cache_clear()
    response = Client().post(url)
    assert response.status_code == 200, response.content
    assert WebSocketToken.objects.get().user is None
    ws = GatewayClient(Client(), gateway, path="/anon/")
    assert ws.connect(token=response.json()["token"]).status_code == 200
    assert WebSocketSession.objects.get().user is None


def test_anonymous_minting_is_refused_without_such_a_view(url):
    discovery.anonymous_tokens_allowed()  # cached for tests.urls (True) ...
    with NO_ANONYMOUS_URLS:  # ... and dropped when ROOT_URLCONF changes
        assert discovery.anonymous_tokens_allowed() is False
        response = Client().post(url)
        assert response.status_code == 401
        assert response.json()["error"]
    assert WebSocketToken.objects.count() == 0
    assert discovery.anonymous_tokens_allowed() is True


def test_logged_in_minting_works_without_anonymous_views(browser, url):
    with NO_ANONYMOUS_URLS:
        assert browser.post(url).status_code == 200
    assert WebSocketToken.objects.count() == 1


# Mint limit --------------------------------------------------------------------------------------


def test_per_user_mint_limit(browser, url, django_user_model):
    with ws_settings(TOKEN_MINT_LIMIT=2, TOKEN_MINT_WINDOW=86400):
        statuses = [browser.post(url).status_code for _ in range(3)]
        refused = browser.post(url)
        other = Client()
        other.force_login(django_user_model.objects.create_user(username="bob", password="pw"))
        assert other.post(url).status_code == 200
    assert statuses == [200, 200, 429]
    assert refused.status_code == 429
    retry_after = int(refused["Retry-After"])
    assert 1 <= retry_after <= 86400
    assert WebSocketToken.objects.count() == 3  # two for alice, one for bob


def test_anonymous_mint_limit_is_per_ip(url):
    with ws_settings(TOKEN_MINT_LIMIT=1, TOKEN_MINT_WINDOW=86400):
        assert Client(REMOTE_ADDR="192.0.2.1").post(url).status_code == 200
        assert Client(REMOTE_ADDR="192.0.2.1").post(url).status_code == 429
        assert Client(REMOTE_ADDR="192.0.2.2").post(url).status_code == 200
    assert WebSocketToken.objects.count() == 2


def test_mint_limit_zero_disables_it(browser, url):
    with ws_settings(TOKEN_MINT_LIMIT=0):
        assert [browser.post(url).status_code for _ in range(5)] == [200] * 5
    assert WebSocketToken.objects.count() == 5


# consume_token -----------------------------------------------------------------------------------


def test_consume_token_is_single_use(user):
    minted = mint_token(user)
    assert consume_token(minted.token) == user.pk
    with pytest.raises(TokenRejected):
        consume_token(minted.token)
    minted.record.refresh_from_db()
    assert minted.record.used_at is not None


def test_consume_anonymous_token_returns_none(db):
    minted = mint_token(None)
    assert consume_token(minted.token) is None
    with pytest.raises(TokenRejected):
        consume_token(minted.token)


@pytest.mark.parametrize("token", ["", "x" * 129, "unknown-token"])
def test_consume_rejects_bad_tokens(db, token):
    with pytest.raises(TokenRejected):
        consume_token(token)


def test_expired_token_is_rejected(user):
    minted = mint_token(user)
    with pytest.raises(TokenRejected):
        consume_token(minted.token, now=minted.record.expires_at)
    with pytest.raises(TokenRejected):
        consume_token(minted.token, now=minted.record.expires_at + timedelta(seconds=1))
    minted.record.refresh_from_db()
    assert minted.record.used_at is None
    # Just before expiry it still works.
    assert consume_token(minted.token, now=minted.record.expires_at - timedelta(seconds=1))


def test_expired_token_cannot_connect(ws, user):
    minted = mint_token(user)
    WebSocketToken.objects.filter(pk=minted.record.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert ws.connect(token=minted.token).status_code == 401
    assert WebSocketSession.objects.count() == 0
