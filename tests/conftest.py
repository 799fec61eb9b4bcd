from __future__ import annotations

import os
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
def _no_real_aws(monkeypatch, tmp_path_factory) -> None:
    """No test may read the developer's AWS credentials or config, or reach AWS by accident."""
    empty = tmp_path_factory.getbasetemp() / "no-aws-config"
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


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


@pytest.fixture
def plane(monkeypatch):
    """moto (plus Stubber for what moto lacks) as the AWS control plane; every client the
    provisioning layer makes, including the commands' and the admin's, is one of its clients."""
    import moto.settings
    from moto import mock_aws

    from django_aws_api_gateway_websockets.provisioning import clients
    from tests.aws_control_plane import ControlPlane
    from tests.helpers import ws_settings

    # moto issues a certificate once this many seconds have passed (read at import time).
    monkeypatch.setattr(moto.settings, "ACM_VALIDATION_WAIT", -1)
    with mock_aws(), ws_settings(CERTIFICATE_POLL_SECONDS=0):
        control_plane = ControlPlane()
        monkeypatch.setattr(clients, "make_client", control_plane.factory)
        yield control_plane


@pytest.fixture
def record(db) -> ApiGateway:
    """An ApiGateway record not yet provisioned."""
    return ApiGateway.objects.create(
        name="chat",
        region="eu-west-1",
        stage="production",
        target_base_endpoint="https://www.example.com/ws/",
    )


#: Database vendors with real concurrent writers and row locks: ``concurrent`` tests run there.
CONCURRENT_VENDORS = frozenset({"postgresql", "mysql"})


def pytest_collection_modifyitems(config, items):
    """Tests marked ``concurrent`` need a server database with real concurrency (row locks,
    several connections to one database); they run in the PostgreSQL and MariaDB passes of CI.
    Tests marked ``sqlite`` are about SQLite itself; they run in the SQLite passes. Tests marked
    ``celery`` start Celery workers on Redis; they run only with ``DAGW_TEST_CELERY=1`` (the
    Celery leg of CI) on a server database. Tests marked ``browser`` drive Chromium; they run
    with ``DAGW_BROWSER_TESTS=1``."""
    from django.db import connection

    wrong = {"concurrent", "sqlite", "celery"}
    if connection.vendor in CONCURRENT_VENDORS:
        wrong.discard("concurrent")
        # Celery workers are separate processes: they need the server database too.
        if os.environ.get("DAGW_TEST_CELERY") == "1":
            wrong.discard("celery")
    wrong.discard(connection.vendor)
    # Real-browser tests run the demo in child processes with its own SQLite file, whatever
    # database this pass uses: once, in CI's browser leg (DAGW_BROWSER_TESTS=1).
    if os.environ.get("DAGW_BROWSER_TESTS") != "1":
        wrong.add("browser")
    keep, dropped = [], []
    for item in items:
        unfit = any(item.get_closest_marker(name) for name in wrong)
        (dropped if unfit else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
