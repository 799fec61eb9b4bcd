from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client

from django_aws_api_gateway_websockets.gateways import gateway_cache
from django_aws_api_gateway_websockets.models import ApiGateway
from django_aws_api_gateway_websockets.testing import GatewayClient
from django_aws_api_gateway_websockets.tokens import mint_token
from tests.helpers import transport
from tests.management_api import ManagementApiServer


@pytest.fixture(autouse=True)
def _fresh_gateway_cache() -> Iterator[None]:
    gateway_cache.clear()
    yield
    gateway_cache.clear()


@pytest.fixture
def gateway(db) -> ApiGateway:
    return ApiGateway.objects.create(
        name="chat",
        api_id="abc123def4",
        region="eu-west-1",
        stage="production",
        target_base_endpoint="https://testserver/ws",
        default_channel_name="lobby",
    )


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="alice", password="pw")


@pytest.fixture
def ws(gateway) -> GatewayClient:
    return GatewayClient(Client(), gateway, path="/ws/")


@pytest.fixture
def token(user) -> str:
    return mint_token(user).token


@pytest.fixture
def server() -> Iterator[ManagementApiServer]:
    """The fake Management API over real HTTP, at the ``/production`` stage path."""
    with ManagementApiServer("/production") as srv:
        yield srv


@pytest.fixture
def local(server) -> Iterator[ManagementApiServer]:
    """The local gateway transport pointed at the fake server (short back-off)."""
    with transport(endpoint_url=server.url, base_backoff=0.005):
        yield server


def pytest_collection_modifyitems(config, items):
    """Tests marked ``postgres`` need real row locking; they run in the PostgreSQL pass of CI.
    Tests marked ``sqlite`` are about SQLite itself; they run in the SQLite passes."""
    from django.db import connection

    wrong = {"postgres", "sqlite"} - {"postgres" if connection.vendor == "postgresql" else ""}
    wrong -= {connection.vendor}
    keep, dropped = [], []
    for item in items:
        unfit = any(item.get_closest_marker(name) for name in wrong)
        (dropped if unfit else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
