"""The headers API Gateway adds itself, defined once in the contract (shared by the local gateway
and the test helpers), and the local gateway package's independence from Django."""

from __future__ import annotations

import re
import subprocess
import sys

from django_aws_api_gateway_websockets import contract

TRACE = re.compile(r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24}$")


def test_connect_forwards_client_handshake_headers_but_not_hop_by_hop():
    headers = contract.forwarded_headers(
        api_id="abc123",
        route_key="$connect",
        source_ip="198.51.100.7",
        client_headers=[
            ("Host", "127.0.0.1:1234"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
            ("Origin", "https://example.com"),
            ("Cookie", "a=1"),
            ("cookie", "b=2"),
            ("User-Agent", "Mozilla/5.0"),
            ("X-Forwarded-For", "10.0.0.1"),
            ("x-amzn-apigateway-api-id", "forged"),
        ],
        client_forwarded_for="10.0.0.1",
    )
    assert headers["Sec-WebSocket-Key"] == "dGhlIHNhbXBsZSBub25jZQ=="
    assert headers["Sec-WebSocket-Version"] == "13"
    assert headers["Origin"] == "https://example.com"
    assert headers["Cookie"] == "a=1; b=2"
    assert headers["User-Agent"] == "Mozilla/5.0"
    assert headers["X-Forwarded-For"] == "10.0.0.1, 198.51.100.7"
    assert headers[contract.AWS_API_ID_HEADER] == "abc123"
    assert headers["X-Forwarded-Proto"] == "https"
    assert headers["X-Forwarded-Port"] == "443"
    assert TRACE.match(headers["X-Amzn-Trace-Id"])
    lower = {name.lower() for name in headers}
    assert not lower & {"host", "upgrade", "connection"}
    assert len([n for n in headers if n.lower() == "x-amzn-apigateway-api-id"]) == 1


def test_other_events_carry_no_client_headers_and_the_gateway_user_agent():
    for route_key in ("$default", "$disconnect", "sendmessage"):
        headers = contract.forwarded_headers(
            api_id="abc123",
            route_key=route_key,
            source_ip="198.51.100.7",
            client_headers={"Origin": "https://example.com", "Cookie": "a=1"},
        )
        assert "Origin" not in headers and "Cookie" not in headers
        assert headers["User-Agent"] == "AmazonAPIGateway_abc123"
        assert headers["X-Forwarded-For"] == "198.51.100.7"


def test_connect_without_user_agent_gets_the_gateway_one_and_trace_ids_differ():
    one = contract.forwarded_headers(api_id="x", route_key="$connect", source_ip="1.2.3.4")
    two = contract.forwarded_headers(api_id="x", route_key="$connect", source_ip="1.2.3.4")
    assert one["User-Agent"] == "AmazonAPIGateway_x"
    assert one["X-Amzn-Trace-Id"] != two["X-Amzn-Trace-Id"]


def test_integration_headers_use_the_same_aws_headers():
    headers = contract.integration_headers(
        connection_id="L0SM9cOFvHcCIhw=",
        api_id="abc",
        route_key="$default",
        source_ip="1.2.3.4",
        secret=None,
    )
    assert headers["User-Agent"] == "AmazonAPIGateway_abc"
    assert TRACE.match(headers["X-Amzn-Trace-Id"])


BLOCK_DJANGO = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "django" or name.startswith("django."):
            raise ImportError("django is blocked: " + name)
        return None
sys.meta_path.insert(0, Block())
import django_aws_api_gateway_websockets.local_gateway as pkg
import django_aws_api_gateway_websockets.contract
import pkgutil, importlib
for info in pkgutil.iter_modules(pkg.__path__):
    importlib.import_module(pkg.__name__ + "." + info.name)
assert not [m for m in sys.modules if m == "django" or m.startswith("django.")]
print("ok", sorted(info.name for info in pkgutil.iter_modules(pkg.__path__)))
"""


def test_local_gateway_imports_nothing_from_django():
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_DJANGO], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")
