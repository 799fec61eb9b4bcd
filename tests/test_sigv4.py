"""The fast SigV4 signer is byte-for-byte botocore's ``SigV4Auth``, and our transport addresses a
connection exactly where a boto3 ``apigatewaymanagementapi`` client does."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from unittest import mock
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials
from hypothesis import given, settings
from hypothesis import strategies as st

from django_aws_api_gateway_websockets.transports import Target
from django_aws_api_gateway_websockets.transports.aws import _Endpoint
from django_aws_api_gateway_websockets.transports.sigv4 import (
    EMPTY_SHA256,
    Credentials,
    Signer,
    canonical_uri,
    payload_hash,
)
from tests.management_api import ManagementApiServer

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//token+with/slashes=="
FROZEN = dt.datetime(2024, 1, 2, 3, 4, 5)
EXECUTE_API = "https://abc123def4.execute-api.eu-west-1.amazonaws.com/production"

connection_ids = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_=-",
    min_size=1,
    max_size=128,
)
endpoints = st.sampled_from(
    [
        EXECUTE_API,
        "https://abc123def4.execute-api.us-east-1.amazonaws.com/dev/",
        "https://ws.example.com/chat",
        "https://ws.example.com",
        "http://127.0.0.1:8080/production",
        "https://ws.example.com:8443/chat",
        "http://localhost/production",
    ]
)
regions = st.sampled_from(["eu-west-1", "us-east-1", "ap-southeast-2", "us-gov-west-1"])
tokens = st.one_of(st.none(), st.just(SESSION_TOKEN), st.text("abcXYZ019+/=", min_size=1))
times = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 12, 31)).map(
    lambda value: value.replace(microsecond=0)
)


def amz_date(when: dt.datetime) -> str:
    return when.strftime("%Y%m%dT%H%M%SZ")


def botocore_sign(
    method: str,
    url: str,
    host: str,
    body: bytes,
    when: dt.datetime,
    *,
    region: str = "eu-west-1",
    token: str | None = None,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
) -> AWSRequest:
    """Sign like botocore does, with the clock frozen at ``when``."""
    request = AWSRequest(
        method=method, url=url, data=body, headers={"Host": host, "X-Amz-Date": amz_date(when)}
    )
    auth = SigV4Auth(BotoCredentials(access_key, secret_key, token), "execute-api", region)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        auth.add_auth(request)
    return request


def ours(
    method: str,
    endpoint_url: str,
    connection_id: str,
    body: bytes,
    when: dt.datetime,
    *,
    region: str = "eu-west-1",
    token: str | None = None,
    signer: Signer | None = None,
) -> tuple[_Endpoint, str, dict[str, str]]:
    """Our transport's path and headers for one request, as ``_AsyncBatch`` builds them."""
    signer = signer or Signer(Credentials(ACCESS_KEY, SECRET_KEY, token), region)
    endpoint = _Endpoint(Target(endpoint_url, region), signer)
    path = endpoint.path(connection_id)
    headers = signer.headers(method, endpoint.host_header, path, payload_hash(body), amz_date(when))
    return endpoint, path, dict(headers)


def assert_same_signature(
    method: str,
    endpoint_url: str,
    connection_id: str,
    body: bytes,
    when: dt.datetime = FROZEN,
    *,
    region: str = "eu-west-1",
    token: str | None = None,
) -> dict[str, str]:
    endpoint, path, headers = ours(
        method, endpoint_url, connection_id, body, when, region=region, token=token
    )
    scheme = urlsplit(endpoint_url).scheme
    url = f"{scheme}://{endpoint.host_header}{path}"
    signed = botocore_sign(
        method, url, endpoint.host_header, body, when, region=region, token=token
    )
    assert headers["Authorization"] == signed.headers["Authorization"]
    assert headers["X-Amz-Date"] == signed.headers["X-Amz-Date"] == amz_date(when)
    assert headers["Host"] == signed.headers["Host"]
    if token:
        assert headers["X-Amz-Security-Token"] == signed.headers["X-Amz-Security-Token"] == token
    else:
        assert "X-Amz-Security-Token" not in headers
        assert "X-Amz-Security-Token" not in signed.headers
    return headers


# -- fixed cases --------------------------------------------------------------------------------


def test_post_with_json_body_matches_botocore():
    body = json.dumps({"type": "chat", "text": "héllo"}).encode()
    headers = assert_same_signature("POST", EXECUTE_API, "L0SM9cOFvHcCIhw=", body)
    assert headers["Authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20240102/eu-west-1/execute-api/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature="
    )


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_empty_body_methods_match_botocore(method):
    assert_same_signature(method, EXECUTE_API, "JC1dgf9yoAMCK-g=", b"")
    assert payload_hash(b"") == EMPTY_SHA256


def test_equals_sign_is_encoded_once_in_the_path_and_twice_in_the_canonical_uri():
    connection_id = "Ab_-9xYz0kwCH6w="
    _endpoint, path, _headers = ours("POST", EXECUTE_API, connection_id, b"x", FROZEN)
    assert path == "/production/@connections/Ab_-9xYz0kwCH6w%3D"
    assert canonical_uri(path) == "/production/%40connections/Ab_-9xYz0kwCH6w%253D"

    url = f"https://abc123def4.execute-api.eu-west-1.amazonaws.com{path}"
    host = "abc123def4.execute-api.eu-west-1.amazonaws.com"
    signed = botocore_sign("POST", url, host, b"x", FROZEN)
    auth = SigV4Auth(BotoCredentials(ACCESS_KEY, SECRET_KEY), "execute-api", "eu-west-1")
    assert auth.canonical_request(signed).split("\n")[1] == canonical_uri(path)
    assert_same_signature("POST", EXECUTE_API, connection_id, b"x")
    assert_same_signature("DELETE", EXECUTE_API, "a==b==", b"")


def test_session_token_is_sent_and_signed():
    headers = assert_same_signature(
        "POST", EXECUTE_API, "L0SM9cOFvHcCIhw=", b"{}", token=SESSION_TOKEN
    )
    assert headers["X-Amz-Security-Token"] == SESSION_TOKEN
    assert "SignedHeaders=host;x-amz-date;x-amz-security-token," in headers["Authorization"]


def test_session_token_changes_the_signature():
    _e, _p, without = ours("GET", EXECUTE_API, "abc=", b"", FROZEN)
    _e, _p, with_token = ours("GET", EXECUTE_API, "abc=", b"", FROZEN, token=SESSION_TOKEN)
    assert without["Authorization"] != with_token["Authorization"]


def test_non_default_port_is_in_the_signed_host_header():
    headers = assert_same_signature("POST", "http://127.0.0.1:8080/production", "abc=", b"hi")
    assert headers["Host"] == "127.0.0.1:8080"


@pytest.mark.parametrize(
    ("endpoint_url", "host"),
    [
        ("https://ws.example.com:443/chat", "ws.example.com"),
        ("http://localhost:80/production", "localhost"),
        ("https://ws.example.com:8443/chat", "ws.example.com:8443"),
    ],
)
def test_default_ports_are_left_out_of_the_host_header(endpoint_url, host):
    headers = assert_same_signature("POST", endpoint_url, "abc=", b"hi")
    assert headers["Host"] == host


@pytest.mark.parametrize(
    ("endpoint_url", "host"),
    [
        ("http://[::1]:8080/production", "[::1]:8080"),
        ("https://[2001:db8::1]/chat", "[2001:db8::1]"),
    ],
)
def test_ipv6_host_header_keeps_its_brackets(endpoint_url, host):
    """An IPv6 literal must stay bracketed in ``Host`` (RFC 7230 5.4), as botocore signs it."""
    headers = assert_same_signature("POST", endpoint_url, "abc=", b"hi")
    assert headers["Host"] == host


def test_custom_domain_mapping_path():
    _endpoint, path, _headers = ours("POST", "https://ws.example.com/chat", "abc=", b"", FROZEN)
    assert path == "/chat/@connections/abc%3D"
    assert_same_signature("POST", "https://ws.example.com/chat", "abc=", b"{}")


def test_custom_domain_without_mapping_key():
    _endpoint, path, _headers = ours("GET", "https://ws.example.com", "abc=", b"", FROZEN)
    assert path == "/@connections/abc%3D"
    assert_same_signature("GET", "https://ws.example.com", "abc=", b"")
    assert_same_signature("GET", "https://ws.example.com/", "abc=", b"")


def test_stage_path_and_trailing_slash():
    _endpoint, path, _headers = ours("GET", EXECUTE_API + "/", "abc", b"", FROZEN)
    assert path == "/production/@connections/abc"
    assert_same_signature("GET", EXECUTE_API + "/", "abc", b"")


def test_one_signer_across_a_day_boundary_matches_botocore_on_both_days():
    """The signing key is cached per day: a new date must derive a new key."""
    signer = Signer(Credentials(ACCESS_KEY, SECRET_KEY), "eu-west-1")
    for when in (dt.datetime(2024, 1, 2, 23, 59, 59), dt.datetime(2024, 1, 3, 0, 0, 0)):
        endpoint, path, headers = ours("POST", EXECUTE_API, "abc=", b"x", when, signer=signer)
        signed = botocore_sign(
            "POST", f"https://{endpoint.host_header}{path}", endpoint.host_header, b"x", when
        )
        assert headers["Authorization"] == signed.headers["Authorization"]


def test_amz_date_matches_botocore_timestamp_format():
    signer = Signer(Credentials(ACCESS_KEY, SECRET_KEY), "eu-west-1")
    when = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    assert signer.amz_date(when.timestamp()) == "20240102T030405Z"
    assert signer.amz_date(when.timestamp() + 0.999) == "20240102T030405Z"
    assert signer.amz_date(when.timestamp() + 1) == "20240102T030406Z"


# -- property-based -----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    connection_id=connection_ids,
    method=st.sampled_from(["POST", "GET", "DELETE"]),
    body=st.binary(max_size=2048),
    endpoint_url=endpoints,
    region=regions,
    token=tokens,
    when=times,
)
def test_any_request_matches_botocore(
    connection_id, method, body, endpoint_url, region, token, when
):
    body = body if method == "POST" else b""
    assert_same_signature(
        method, endpoint_url, connection_id, body, when, region=region, token=token
    )


@settings(max_examples=200, deadline=None)
@given(connection_id=connection_ids)
def test_path_is_percent_encoded_once(connection_id):
    endpoint = _Endpoint(Target(EXECUTE_API, "eu-west-1"), Signer(Credentials("a", "b"), "x"))
    path = endpoint.path(connection_id)
    prefix = "/production/@connections/"
    assert path.startswith(prefix)
    encoded = path[len(prefix) :]
    assert encoded == connection_id.replace("=", "%3D")
    assert canonical_uri(path) == "/production/%40connections/" + connection_id.replace(
        "=", "%253D"
    )


# -- against a real boto3 client ----------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_server() -> Iterator[ManagementApiServer]:
    with ManagementApiServer("/production", auto_connect=True) as server:
        yield server


@pytest.fixture(scope="module")
def boto_client(fake_server):
    """A real boto3 client whose outgoing requests are captured just before they are sent."""
    client = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=fake_server.url,
        region_name="eu-west-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        aws_session_token=SESSION_TOKEN,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    sent: list = []
    client.meta.events.register("before-send.*", lambda request, **_: sent.append(request))
    client.captured = sent
    return client


def _call(client, method: str, connection_id: str, body: bytes) -> None:
    if method == "POST":
        client.post_to_connection(ConnectionId=connection_id, Data=body)
    elif method == "GET":
        client.get_connection(ConnectionId=connection_id)
    else:
        client.delete_connection(ConnectionId=connection_id)


def _boto_vs_ours(fake_server, boto_client, method: str, connection_id: str, body: bytes):
    fake_server.add_connection(connection_id)  # a DELETE earlier may have closed it
    boto_client.captured.clear()
    _call(boto_client, method, connection_id, body)
    (request,) = boto_client.captured
    stamp = request.headers["X-Amz-Date"].decode()
    when = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ")
    endpoint, path, headers = ours(
        method, fake_server.url, connection_id, body, when, token=SESSION_TOKEN
    )
    assert request.method == method
    assert urlsplit(request.url).path == path
    assert urlsplit(request.url).netloc == endpoint.host_header
    assert request.headers["Authorization"].decode() == headers["Authorization"]
    assert request.headers["X-Amz-Security-Token"].decode() == headers["X-Amz-Security-Token"]


@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
@pytest.mark.parametrize("connection_id", ["L0SM9cOFvHcCIhw=", "JC1dgf9yoAMCK-g", "a=b=c=="])
def test_boto3_client_and_transport_use_the_same_path_and_signature(
    fake_server, boto_client, method, connection_id
):
    body = b'{"hello":"world"}' if method == "POST" else b""
    _boto_vs_ours(fake_server, boto_client, method, connection_id, body)
    if method == "POST":
        # The server decoded botocore's path back to the id the transport encoded.
        assert fake_server.received[connection_id][-1] == body


@settings(max_examples=60, deadline=None)
@given(connection_id=connection_ids)
def test_boto3_client_path_for_any_id(fake_server, boto_client, connection_id):
    _boto_vs_ours(fake_server, boto_client, "POST", connection_id, b"payload")
    assert fake_server.received[connection_id][-1] == b"payload"
