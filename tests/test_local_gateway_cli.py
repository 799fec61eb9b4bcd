"""``python -m django_aws_api_gateway_websockets.local_gateway``: first line, flags, shutdown, and
the refusal to listen on a non-loopback address."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.request

import pytest

from django_aws_api_gateway_websockets.local_gateway.__main__ import config_from, parser
from django_aws_api_gateway_websockets.local_gateway.config import ConfigError, GatewayConfig

MODULE = "django_aws_api_gateway_websockets.local_gateway"


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", MODULE, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_first_line_gives_the_urls_and_signals_stop_it_cleanly(signum):
    process = start("--port", "0", "--idle-timeout", "5", "--integration-timeout", "2")
    try:
        line = process.stdout.readline()
        match = re.search(r"WebSocket (ws://127\.0\.0\.1:(\d+))/<apiId>/<stage>", line)
        assert match, line
        port = match.group(2)
        assert f"Management API http://127.0.0.1:{port}/<apiId>/<stage>/@connections/<id>" in line
        assert f"control plane http://127.0.0.1:{port}" in line
        # It answers: an unknown API is Forbidden, as in AWS.
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nope/prod", timeout=5)
        assert info.value.code == 403
        process.send_signal(signum)
        assert process.wait(10) == 0
        assert "stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_non_loopback_bind_is_refused_unless_allowed():
    result = subprocess.run(
        [sys.executable, "-m", MODULE, "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "Refusing to listen on '0.0.0.0'" in result.stderr
    with pytest.raises(ConfigError):
        GatewayConfig(host="192.0.2.1")
    assert GatewayConfig(host="0.0.0.0", allow_remote=True).allow_remote
    assert GatewayConfig(host="::1").host == "::1"
    assert GatewayConfig(host="localhost").host == "localhost"


def test_flags_map_to_the_config():
    config = config_from(
        parser().parse_args(
            [
                "--port",
                "8123",
                "--idle-timeout",
                "1.5",
                "--max-duration",
                "30",
                "--integration-timeout",
                "3",
                "--drop-disconnect",
                "--management-rate-limit",
                "100",
            ]
        )
    )
    assert config == GatewayConfig(
        port=8123,
        idle_timeout=1.5,
        max_duration=30,
        integration_timeout=3,
        drop_disconnect=True,
        management_rate_limit=100,
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"port": 70000},
        {"idle_timeout": 0},
        {"integration_timeout": -1},
        {"management_rate_limit": 0},
    ],
)
def test_bad_config_is_refused(kwargs):
    with pytest.raises(ConfigError):
        GatewayConfig(**kwargs)
