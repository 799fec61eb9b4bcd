"""The Django side of the local gateway: LOCAL_GATEWAY_URL, its checks, the loader and the
``run_local_gateway`` command, against a running gateway."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from django_aws_api_gateway_websockets import checks, endpoints
from django_aws_api_gateway_websockets.gateways import gateway_cache
from django_aws_api_gateway_websockets.local_gateway.config import GatewayConfig
from django_aws_api_gateway_websockets.local_gateway.server import GatewayThread
from django_aws_api_gateway_websockets.local_gateway_loader import (
    backend_endpoint,
    load_gateway,
    load_gateways,
)
from django_aws_api_gateway_websockets.management.commands import run_local_gateway
from django_aws_api_gateway_websockets.models import ApiGateway, ApiGatewayAdditionalRoute
from django_aws_api_gateway_websockets.provisioning.clients import endpoint_url, make_client
from django_aws_api_gateway_websockets.transports import get_transport, transport_path
from django_aws_api_gateway_websockets.transports.aws import (
    LocalGatewayTransport,
    ManagementApiTransport,
)
from tests.settings import GATEWAY_SECRET

LOCAL = "http://127.0.0.1:4510"
ROOT = Path(__file__).resolve().parents[1]


def configured(**values):
    return override_settings(
        AWS_API_GATEWAY_WEBSOCKETS={"GATEWAY_SECRETS": [GATEWAY_SECRET], **values}
    )


@pytest.fixture(scope="module")
def running() -> Iterator[GatewayThread]:
    with GatewayThread(GatewayConfig()) as thread:
        yield thread


@pytest.fixture
def record(db) -> ApiGateway:
    return ApiGateway.objects.create(
        name="chat",
        api_id="aws0api001",
        region="eu-west-1",
        stage="production",
        target_base_endpoint="https://www.example.com/ws/",
        custom_domain_name="ws.example.com",
        aws_resources={"api": "aws0api001", "route:$connect": "awsrout"},
        deployment_id="awsdep",
        provisioning_status=ApiGateway.ProvisioningStatus.PROVISIONED,
    )


# -- LOCAL_GATEWAY_URL: the local gateway by settings only ----------------------------------


@pytest.mark.django_db
def test_unset_means_aws_for_everything(record):
    assert endpoints.local_gateway_url() == ""
    assert record.websocket_url == "wss://ws.example.com"
    assert gateway_cache.target(record.pk).endpoint_url == "https://ws.example.com"
    assert transport_path().endswith("ManagementApiTransport")
    assert endpoint_url("apigatewayv2") is None


@pytest.mark.django_db
def test_set_points_transport_provisioning_and_browsers_at_the_gateway(record):
    with configured(LOCAL_GATEWAY_URL=LOCAL + "/"):
        assert record.websocket_url == "ws://127.0.0.1:4510/aws0api001/production"
        target = gateway_cache.target(record.pk)
        assert target.endpoint_url == f"{LOCAL}/aws0api001/production"
        assert target.region == "eu-west-1"
        transport = get_transport()
        assert isinstance(transport, LocalGatewayTransport)
        assert transport.target_for(target) == target  # each API keeps its own URL
        client = make_client("apigatewayv2", "eu-west-1")
        assert client.meta.endpoint_url == LOCAL
        assert client._request_signer._credentials.access_key == "local"
        assert endpoint_url("acm") is None  # the gateway has no ACM
    # The record itself never changed; unset again, AWS again.
    record.refresh_from_db()
    assert record.api_id == "aws0api001" and record.custom_domain_name == "ws.example.com"
    assert gateway_cache.target(record.pk).endpoint_url == "https://ws.example.com"
    assert type(get_transport()) is ManagementApiTransport


def test_a_custom_transport_is_kept():
    path = "django_aws_api_gateway_websockets.transports.outbox.OutboxTransport"
    with configured(LOCAL_GATEWAY_URL=LOCAL, TRANSPORT=path):
        assert transport_path() == path


def test_websocket_url_uses_wss_for_an_https_gateway(record):
    with configured(LOCAL_GATEWAY_URL="https://gw.test:8443"):
        assert record.websocket_url == "wss://gw.test:8443/aws0api001/production"
    record.api_id = None
    with configured(LOCAL_GATEWAY_URL=LOCAL):
        assert record.websocket_url == ""


# -- checks ---------------------------------------------------------------------------------


def ids(messages) -> list[str]:
    return [m.id for m in messages]


@pytest.mark.parametrize(
    "value", ["127.0.0.1:4510", "ws://127.0.0.1:4510", "http://", 4510, "http://h/?x=1"]
)
def test_e020_malformed_local_gateway_url(value):
    with configured(LOCAL_GATEWAY_URL=value):
        assert "dagw.E020" in ids(checks.check_settings())


def test_valid_local_gateway_url_passes():
    with configured(LOCAL_GATEWAY_URL=LOCAL, AWS_ENDPOINT_URLS={"apigatewayv2": LOCAL + "/"}):
        assert ids(checks.check_settings()) == []
        assert ids(checks.check_local_gateway_host()) == []


def test_e022_conflicting_control_plane_urls():
    with configured(LOCAL_GATEWAY_URL=LOCAL, AWS_ENDPOINT_URLS={"apigatewayv2": "http://x:1"}):
        assert ids(checks.check_settings()) == ["dagw.E022"]


def test_e023_one_endpoint_for_every_gateway():
    with configured(LOCAL_GATEWAY_URL=LOCAL, TRANSPORT_OPTIONS={"endpoint_url": "http://x:1"}):
        assert ids(checks.check_settings()) == ["dagw.E023"]


def test_w020_deploy_check_and_w021_remote_host():
    with configured(LOCAL_GATEWAY_URL=LOCAL):
        assert ids(checks.check_local_gateway_in_production()) == ["dagw.W020"]
    with configured(LOCAL_GATEWAY_URL="http://10.0.0.5:4510"):
        assert ids(checks.check_local_gateway_host()) == ["dagw.W021"]
    with configured():
        assert checks.check_local_gateway_in_production() == []
        assert checks.check_local_gateway_host() == []


# -- the loader -------------------------------------------------------------------------------


def test_backend_endpoint_keeps_the_path():
    assert backend_endpoint("https://www.example.com/ws/", "http://127.0.0.1:8000") == (
        "http://127.0.0.1:8000/ws/"
    )
    assert backend_endpoint("https://www.example.com/ws/", None) == "https://www.example.com/ws/"


@pytest.mark.django_db
def test_loading_keeps_the_api_id_and_leaves_the_record_alone(running, record):
    ApiGatewayAdditionalRoute.objects.create(gateway=record, route_key="shout", two_way=True)
    before = ApiGateway.objects.values().get(pk=record.pk)
    routes_before = list(ApiGatewayAdditionalRoute.objects.values())
    lines: list[str] = []
    (loaded,) = load_gateways(
        running.control_url, backend_url="http://127.0.0.1:8000", progress=lines.append
    )
    assert loaded.ok and loaded.api_id == "aws0api001" and not loaded.assigned_id
    assert loaded.websocket_url == f"{running.ws_url}/aws0api001/production"
    assert loaded.management_url == f"{running.http_url}/aws0api001/production"
    assert any("create_route" in call for call in loaded.calls)
    assert lines and "aws0api001" in lines[-1]
    assert ApiGateway.objects.values().get(pk=record.pk) == before
    assert list(ApiGatewayAdditionalRoute.objects.values()) == routes_before

    served = running.store.deployed("aws0api001", "production")
    assert set(served.snapshot.routes) == {"$connect", "$disconnect", "$default", "shout"}
    uris = {i.integration_uri for i in served.snapshot.integrations.values()}
    assert "http://127.0.0.1:8000/ws/connect" in uris and "http://127.0.0.1:8000/ws/shout" in uris

    # Loading again replaces the API (same id), e.g. after the records changed.
    ApiGatewayAdditionalRoute.objects.filter(route_key="shout").delete()
    again = load_gateway(record, running.control_url)
    assert again.ok and again.api_id == "aws0api001"
    served = running.store.deployed("aws0api001", "production")
    assert set(served.snapshot.routes) == {"$connect", "$disconnect", "$default"}
    assert "https://www.example.com/ws/connect" in {
        i.integration_uri for i in served.snapshot.integrations.values()
    }


@pytest.mark.django_db
def test_a_record_without_an_id_gets_the_local_one(running):
    record = ApiGateway.objects.create(name="new", target_base_endpoint="http://127.0.0.1:8000/ws/")
    loaded = load_gateway(record, running.control_url)
    assert loaded.ok and loaded.assigned_id
    record.refresh_from_db()
    assert record.api_id == loaded.api_id and record.aws_resources == {"api": loaded.api_id}
    assert record.provisioning_status == ApiGateway.ProvisioningStatus.NOT_PROVISIONED
    assert running.store.deployed(loaded.api_id, "production") is not None


@pytest.mark.django_db
def test_a_record_the_gateway_refuses_is_reported_not_raised(running):
    record = ApiGateway.objects.create(
        name="bad",
        api_id="bad0api001",
        target_base_endpoint="http://127.0.0.1:8000/ws/",
        route_selection_expression="action",
    )
    loaded = load_gateway(record, running.control_url)
    assert not loaded.ok and "RouteSelectionExpression" in loaded.error
    record.refresh_from_db()
    assert record.provisioning_status == ApiGateway.ProvisioningStatus.NOT_PROVISIONED
    assert "bad0api001" not in running.store.apis


# -- run_local_gateway ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_run_local_gateway_starts_loads_prints_and_stops(monkeypatch, record):
    seen: dict[str, object] = {}

    def serve(self):
        url = self.stdout._out.getvalue().split("control plane ")[1].split()[0]
        client = boto3.client(
            "apigatewayv2",
            endpoint_url=url,
            region_name="eu-west-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        seen["apis"] = [a["ApiId"] for a in client.get_apis()["Items"]]
        seen["threads"] = [t.name for t in threading.enumerate()]
        raise KeyboardInterrupt  # Ctrl-C

    monkeypatch.setattr(run_local_gateway.Command, "wait", serve)
    out = io.StringIO()
    call_command(
        "run_local_gateway",
        "--port=0",
        "--idle-timeout=5",
        "--backend-url=http://127.0.0.1:8000",
        stdout=out,
    )
    text = out.getvalue()
    assert seen["apis"] == ["aws0api001"]
    assert "dagw-local-gateway" in seen["threads"]
    assert text.startswith("Local API Gateway: WebSocket ws://127.0.0.1:")
    assert "Loading 1 ApiGateway record(s)..." in text
    assert "chat: ws://127.0.0.1:" in text
    assert "LOCAL_GATEWAY_URL" in text  # not set in these settings: says how
    assert text.rstrip().endswith("Local API Gateway stopped.")
    after = [t.name for t in threading.enumerate()]
    assert after.count("dagw-local-gateway") == seen["threads"].count("dagw-local-gateway") - 1


@pytest.mark.django_db
def test_run_local_gateway_refuses_bad_options(record):
    with pytest.raises(CommandError, match="Refusing to listen"):
        call_command("run_local_gateway", "--host=0.0.0.0", "--port=0")
    with pytest.raises(CommandError, match="No ApiGateway record named nope"):
        call_command("run_local_gateway", "--port=0", "--gateway=nope")
    with pytest.raises(CommandError, match="idle_timeout"):
        call_command("run_local_gateway", "--port=0", "--idle-timeout=0")


# -- provisioning commands and admin actions do not write local ids into records --------------


@pytest.mark.django_db
def test_writing_provisioning_commands_refuse_with_the_setting_and_plan_reads(running, record):
    # The local gateway serves no custom domains: a plan that reads one is refused by it.
    ApiGateway.objects.filter(pk=record.pk).update(custom_domain_name="")
    load_gateways(running.control_url)
    before = ApiGateway.objects.values().get(pk=record.pk)
    with configured(LOCAL_GATEWAY_URL=running.http_url):
        for command in (
            "apply_websocket_api",
            "teardown_websocket_api",
            "rotate_websocket_secret",
            "provision_websocket_domain",
        ):
            with pytest.raises(CommandError, match="run_local_gateway loads the records"):
                call_command(command, "chat", stdout=io.StringIO())
        out = io.StringIO()
        call_command("plan_websocket_api", "chat", stdout=out)  # reads the local gateway
        assert "nothing to do" in out.getvalue()
    assert ApiGateway.objects.values().get(pk=record.pk) == before


@pytest.mark.django_db
def test_admin_apply_and_teardown_refuse_with_the_setting(admin_client, record):
    from django.contrib.messages import get_messages
    from django.urls import reverse

    url = reverse("admin:django_aws_api_gateway_websockets_apigateway_changelist")
    with configured(LOCAL_GATEWAY_URL=LOCAL):
        for action, extra in (("apply_plan", {}), ("tear_down", {"confirmed": "yes"})):
            data = {"action": action, "_selected_action": [record.pk], **extra}
            response = admin_client.post(url, data, follow=True)
            shown = [str(m) for m in get_messages(response.wsgi_request)]
            assert len(shown) == 1 and "LOCAL_GATEWAY_URL is set" in shown[0]


@pytest.mark.django_db(transaction=True)
def test_run_local_gateway_listens_where_local_gateway_url_says(monkeypatch, record):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    monkeypatch.setattr(run_local_gateway.Command, "wait", lambda self: None)
    out = io.StringIO()
    with configured(LOCAL_GATEWAY_URL=f"http://127.0.0.1:{free}"):
        call_command("run_local_gateway", stdout=out)
    text = out.getvalue()
    assert f"control plane http://127.0.0.1:{free}" in text
    assert "Django sends through AWS" not in text  # the setting already points here


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_run_local_gateway_process_stops_on_ctrl_c_and_sigterm(tmp_path, signum):
    """A real ``manage.py run_local_gateway`` process: prints its URLs, serves the control
    plane, and stops cleanly on Ctrl-C (SIGINT) and on SIGTERM."""
    (tmp_path / "proc_settings.py").write_text(
        "from tests.settings import *  # noqa\n"
        f"DATABASES = {{'default': {{'ENGINE': 'django.db.backends.sqlite3', "
        f"'NAME': {str(tmp_path / 'db.sqlite3')!r}}}}}\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": "proc_settings",
    }
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "-v0"], env=env, check=True, timeout=120
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "django", "run_local_gateway", "--port=0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # A background process may inherit an ignored SIGINT; a terminal's Ctrl-C does not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        first = process.stdout.readline()
        assert first.startswith("Local API Gateway: WebSocket ws://127.0.0.1:")
        control = first.split("control plane ")[1].strip()
        while "Ready." not in process.stdout.readline():
            pass
        client = boto3.client(
            "apigatewayv2",
            endpoint_url=control,
            region_name="eu-west-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        assert client.get_apis()["Items"] == []
        process.send_signal(signum)
        rest, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert rest.rstrip().endswith("Local API Gateway stopped.")
