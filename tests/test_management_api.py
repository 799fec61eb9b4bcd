"""The fake Management API answers like AWS, as a real boto3 client sees it (no database needed)."""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.management_api import MAX_PAYLOAD, ManagementApiServer

CID = "L0SM9cOFvHcCIhw="
OTHER = "JC1dgf9yoAMCK-g="
AUTH = "AWS4-HMAC-SHA256 Credential=x/20240101/us-east-1/execute-api/aws4_request"
UUID4_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@pytest.fixture
def server() -> Iterator[ManagementApiServer]:
    with ManagementApiServer() as srv:
        srv.add_connection(CID, source_ip="198.51.100.7", user_agent="pytest-agent")
        yield srv


def make_client(endpoint_url: str, **config: object):
    # botocore's retries "max_attempts" counts retries (1 = one retry); "total_max_attempts"
    # counts attempts, so 1 means botocore never retries by itself.
    config.setdefault("retries", {"total_max_attempts": 1, "mode": "standard"})
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=Config(**config),
    )


@pytest.fixture
def client(server: ManagementApiServer):
    return make_client(server.url)


def raw_request(
    server: ManagementApiServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[http.client.HTTPResponse, bytes]:
    """One request with ``http.client``; signed (an ``Authorization`` header) unless overridden."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    conn.request(method, path, body=body, headers={"Authorization": AUTH, **(headers or {})})
    response = conn.getresponse()
    content = response.read()
    conn.close()
    return response, content


def recv_responses(sock: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """Read ``count`` HTTP responses (Content-Length framed) from a raw socket."""
    data = b""
    out: list[tuple[int, dict[str, str], bytes]] = []
    while len(out) < count:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            lines = data[:end].decode("latin-1").split("\r\n")
            headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
            length = int(headers["content-length"])
            if len(data) >= end + 4 + length:
                out.append((int(lines[0].split()[1]), headers, data[end + 4 : end + 4 + length]))
                data = data[end + 4 + length :]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return out


def test_post_to_connection_succeeds_and_is_recorded(server, client):
    response = client.post_to_connection(ConnectionId=CID, Data=b'{"hello": 1}')
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    client.post_to_connection(ConnectionId=CID, Data="héllo")  # str is sent UTF-8 encoded
    assert server.received[CID] == [b'{"hello": 1}', "héllo".encode()]
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == "0"
    assert UUID4_RE.fullmatch(headers["x-amzn-requestid"])
    assert response["ResponseMetadata"]["RequestId"] == headers["x-amzn-requestid"]


def test_unknown_or_removed_connection_raises_gone(server, client):
    with pytest.raises(client.exceptions.GoneException) as excinfo:
        client.post_to_connection(ConnectionId=OTHER, Data=b"x")
    error = excinfo.value.response
    assert error["Error"] == {"Code": "GoneException", "Message": ""}
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 410
    assert error["ResponseMetadata"]["HTTPHeaders"]["content-length"] == "0"
    server.remove_connection(CID)
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId=CID, Data=b"x")
    assert server.received[CID] == []


def test_payload_limit(server, client):
    client.post_to_connection(ConnectionId=CID, Data=b"a" * MAX_PAYLOAD)
    with pytest.raises(client.exceptions.PayloadTooLargeException) as excinfo:
        client.post_to_connection(ConnectionId=CID, Data=b"a" * (MAX_PAYLOAD + 1))
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert excinfo.value.response["Error"]["Message"]
    assert [len(m) for m in server.received[CID]] == [MAX_PAYLOAD]


def test_throttle_once_then_success(server, client):
    server.throttle_once([CID])
    with pytest.raises(client.exceptions.LimitExceededException) as excinfo:
        client.post_to_connection(ConnectionId=CID, Data=b"1")
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    client.post_to_connection(ConnectionId=CID, Data=b"2")
    assert server.received[CID] == [b"2"]


def test_botocore_retries_injected_throttling_by_itself(server):
    server.fail(CID, status=429, times=2)
    retrying = make_client(server.url, retries={"total_max_attempts": 3, "mode": "standard"})
    response = retrying.post_to_connection(ConnectionId=CID, Data=b"ok")
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert server.received[CID] == [b"ok"]
    assert server.status_counts[429] == 2


def test_error_once_is_a_500(server, client):
    server.error_once(CID)
    with pytest.raises(ClientError) as excinfo:
        client.post_to_connection(ConnectionId=CID, Data=b"x")
    assert excinfo.value.response["Error"]["Code"] == "InternalServerErrorException"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    client.post_to_connection(ConnectionId=CID, Data=b"x")


def test_get_connection(server, client):
    response = client.get_connection(ConnectionId=CID)
    assert isinstance(response["ConnectedAt"], datetime)
    assert isinstance(response["LastActiveAt"], datetime)
    assert abs(response["ConnectedAt"].timestamp() - time.time()) < 60
    assert response["Identity"] == {"SourceIp": "198.51.100.7", "UserAgent": "pytest-agent"}
    raw, content = raw_request(server, "GET", f"/production/@connections/{CID}")
    body = json.loads(content)
    assert raw.status == 200
    assert set(body) == {"connectedAt", "identity", "lastActiveAt"}
    iso = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(iso, body["connectedAt"]) and re.fullmatch(iso, body["lastActiveAt"])
    with pytest.raises(client.exceptions.GoneException):
        client.get_connection(ConnectionId=OTHER)


def test_delete_connection_then_gone(server, client):
    response = client.delete_connection(ConnectionId=CID)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId=CID, Data=b"x")
    with pytest.raises(client.exceptions.GoneException):
        client.delete_connection(ConnectionId=CID)
    assert not server.is_connected(CID)


def test_wrong_base_path_is_forbidden(server):
    for endpoint in (server.origin, server.origin + "/staging", server.url + "/extra"):
        with pytest.raises(make_client(endpoint).exceptions.ForbiddenException) as excinfo:
            make_client(endpoint).post_to_connection(ConnectionId=CID, Data=b"x")
        assert excinfo.value.response["Error"]["Message"] == "Forbidden"
    assert server.received[CID] == []


@pytest.mark.parametrize("base_path", ["", "/chat", "chat/"])
def test_other_base_paths(base_path):
    with ManagementApiServer(base_path) as server:
        server.add_connection(CID)
        assert server.url == server.origin + ("/chat" if base_path else "")
        make_client(server.url + "/").post_to_connection(ConnectionId=CID, Data=b"x")
        assert server.received[CID] == [b"x"]


def test_percent_encoded_at_sign_and_id(server):
    path = f"/production/%40connections/{CID.replace('=', '%3D')}"
    assert raw_request(server, "POST", path, body=b"raw")[0].status == 200
    assert server.received[CID] == [b"raw"]
    assert raw_request(server, "POST", "/production/@connections/")[0].status == 403
    assert raw_request(server, "POST", f"/production/@connections/{CID}/x")[0].status == 403
    assert raw_request(server, "PUT", f"/production/@connections/{CID}")[0].status == 403


def test_malformed_id_is_bad_request(server, client):
    for bad in ("bad.id", "a b", "x" * 129):
        with pytest.raises(ClientError) as excinfo:
            client.post_to_connection(ConnectionId=bad, Data=b"x")
        assert excinfo.value.response["Error"]["Code"] == "BadRequestException"
        assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_missing_authentication_token(server):
    path = f"/production/@connections/{CID}"
    bogus = {"Authorization": "Bearer abc"}
    for headers in ({"Authorization": ""}, bogus):
        unsigned, content = raw_request(server, "POST", path, b"x", headers)
        assert unsigned.status == 403
        assert unsigned.getheader("x-amzn-ErrorType") == "ForbiddenException"
        assert json.loads(content) == {"message": "Missing Authentication Token"}
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    conn.request("POST", path, body=b"x")  # no Authorization header at all
    assert conn.getresponse().status == 403
    conn.close()
    assert server.received[CID] == []
    with ManagementApiServer(require_auth=False) as open_server:
        open_server.add_connection(CID)
        conn = http.client.HTTPConnection(open_server.host, open_server.port, timeout=5)
        conn.request("POST", f"/production/@connections/{CID}", body=b"x")
        assert conn.getresponse().status == 200
        conn.close()


def test_auto_connect_and_gone():
    with ManagementApiServer(auto_connect=True, record=False) as server:
        client = make_client(server.url)
        ids = [f"conn{i:011d}=" for i in range(20)]
        for cid in ids:
            client.post_to_connection(ConnectionId=cid, Data=b"x")
        server.gone(ids[:5])
        with pytest.raises(client.exceptions.GoneException):
            client.post_to_connection(ConnectionId=ids[0], Data=b"x")
        assert client.get_connection(ConnectionId=ids[9])["Identity"]["SourceIp"]
        client.delete_connection(ConnectionId=ids[10])
        with pytest.raises(client.exceptions.GoneException):
            client.post_to_connection(ConnectionId=ids[10], Data=b"x")
        server.add_connection(ids[0])
        client.post_to_connection(ConnectionId=ids[0], Data=b"x")
        assert server.received == {}
        assert server.status_counts == {200: 20 + 1 + 1, 204: 1, 410: 2}
        assert server.method_counts == {"POST": 23, "GET": 1, "DELETE": 1}


def test_counters_and_stats(server, client):
    client.post_to_connection(ConnectionId=CID, Data=b"x")
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId=OTHER, Data=b"x")
    client.get_connection(ConnectionId=CID)
    assert server.requests == 3
    assert server.status_counts == {200: 2, 410: 1}
    assert server.method_counts == {"POST": 2, "GET": 1}
    stats = json.loads(raw_request(server, "GET", "/_fake/stats", headers={"Authorization": ""})[1])
    assert stats["requests"] == 3 and stats["status"] == {"200": 2, "410": 1}
    server.reset()
    assert server.requests == 0 and server.received == {} and not server.is_connected(CID)


def test_latency_is_applied(server, client):
    server.latency = 0.05
    start = time.perf_counter()
    client.post_to_connection(ConnectionId=CID, Data=b"x")
    assert time.perf_counter() - start >= 0.05
    server.latency = 0
    start = time.perf_counter()
    client.post_to_connection(ConnectionId=CID, Data=b"x")
    assert time.perf_counter() - start < 0.05


def test_concurrent_requests_do_not_queue_behind_latency(server):
    server.latency = 0.05
    ids = [f"conc{i:011d}=" for i in range(200)]
    for cid in ids:
        server.add_connection(cid)
    client = make_client(server.url, max_pool_connections=200)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=200) as pool:
        list(pool.map(lambda cid: client.post_to_connection(ConnectionId=cid, Data=b"m"), ids))
    elapsed = time.perf_counter() - start
    assert elapsed < 200 * 0.05 / 4, elapsed
    assert all(server.received[cid] == [b"m"] for cid in ids)


def test_keep_alive_pipelining_chunked_and_close(server):
    path = f"/production/@connections/{CID}"
    head = f"Host: x\r\nAuthorization: {AUTH}\r\n"
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        gone = f"/production/@connections/{OTHER}"
        sock.sendall(
            f"POST {path} HTTP/1.1\r\n{head}Content-Length: 3\r\n\r\none".encode()
            + f"GET {path} HTTP/1.1\r\n{head}\r\n".encode()
            + f"POST {gone} HTTP/1.1\r\n{head}Content-Length: 1\r\n\r\nx".encode()
        )
        responses = recv_responses(sock, 3)
        assert [status for status, _, _ in responses] == [200, 200, 410]
        for _, headers, _ in responses:
            assert headers["content-type"] == "application/json"
            assert headers["connection"] == "keep-alive"
            assert UUID4_RE.fullmatch(headers["x-amzn-requestid"])
        assert responses[2][1]["x-amzn-errortype"] == "GoneException"
        assert responses[2][2] == b""
        # A chunked body arriving in pieces, then the same connection asks to close.
        sock.sendall(f"POST {path} HTTP/1.1\r\n{head}Transfer-Encoding: chunked\r\n\r\n".encode())
        sock.sendall(b"3\r\ntwo\r\n")
        time.sleep(0.02)
        sock.sendall(b"5;ext=1\r\n-more\r\n0\r\n\r\n")
        sock.sendall(f"DELETE {path} HTTP/1.1\r\n{head}Connection: close\r\n\r\n".encode())
        (status, _, _), (deleted, headers, _) = recv_responses(sock, 2)
        assert (status, deleted, headers["connection"]) == (200, 204, "close")
        assert sock.recv(1) == b""  # the server closed the connection
    assert server.received[CID] == [b"one", b"two-more"]


def test_pipelined_responses_stay_in_order_when_latency_changes(server):
    path = f"/production/@connections/{CID}"
    head = f"Host: x\r\nAuthorization: {AUTH}\r\n"
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        server.latency = 0.2
        sock.sendall(f"GET {path} HTTP/1.1\r\n{head}\r\n".encode())
        time.sleep(0.05)
        server.latency = 0
        sock.sendall(f"POST /production/@connections/{OTHER} HTTP/1.1\r\n{head}\r\n".encode())
        assert [status for status, _, _ in recv_responses(sock, 2)] == [200, 410]


def test_malformed_http_gets_400_and_close(server):
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        ((status, headers, _),) = recv_responses(sock, 1)
        assert (status, headers["connection"]) == (400, "close")
        assert sock.recv(1) == b""


def test_command_line_entry_point():
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "tests.management_api", "--port", "0", "--auto-connect"]
    with subprocess.Popen(
        [*command, "--latency", "0.01", "--no-record"], cwd=root, stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            url = proc.stdout.readline().strip()
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/production", url)
            make_client(url).post_to_connection(ConnectionId=OTHER, Data=b"x")
        finally:
            proc.terminate()
        assert proc.wait(10) == 0
