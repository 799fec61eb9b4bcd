"""The local gateway's Management API: an unmodified boto3 client, the package's own transport, and
raw HTTP for what no SDK sends (unsigned, chunked, pipelined, ``%40connections``)."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from botocore.exceptions import ClientError
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from django_aws_api_gateway_websockets import contract
from django_aws_api_gateway_websockets.local_gateway.config import GatewayConfig
from django_aws_api_gateway_websockets.local_gateway.server import GatewayThread
from tests.local_gateway_support import (
    RecordingBackend,
    Reply,
    build_api,
    connection_id_of,
    management_client,
    ws_url,
)

SIGNED = {"Authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/execute-api/"}


@pytest.fixture(scope="module")
def backend() -> Iterator[RecordingBackend]:
    server = RecordingBackend().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh(backend: RecordingBackend) -> None:
    backend.reset()


@pytest.fixture(scope="module")
def lgw() -> Iterator[GatewayThread]:
    with GatewayThread(GatewayConfig()) as gateway:
        yield gateway


def raw(lgw, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", lgw.port, timeout=5)
    try:
        connection.request(method, path, body=body, headers={**SIGNED, **(headers or {})})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_post_get_delete_with_boto3(lgw, backend):
    api = build_api(lgw.store, backend.url)
    client = management_client(lgw, api)
    with connect(ws_url(lgw, api), user_agent_header="Browser/1.0") as ws:
        connection_id = connection_id_of(backend)
        before = datetime.now(timezone.utc)
        client.post_to_connection(ConnectionId=connection_id, Data=b'{"hello": "world"}')
        client.post_to_connection(ConnectionId=connection_id, Data="ünïcode".encode())
        assert ws.recv(timeout=5) == '{"hello": "world"}'
        assert ws.recv(timeout=5) == "ünïcode"
        info = client.get_connection(ConnectionId=connection_id)
        assert info["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "Browser/1.0"}
        assert info["ConnectedAt"] <= info["LastActiveAt"]
        assert abs((info["LastActiveAt"] - before).total_seconds()) < 5
        response = client.delete_connection(ConnectionId=connection_id)
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd.code == 1000
    backend.wait_for(lambda rs: any(r.path == "/disconnect" for r in rs))
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId=connection_id, Data=b"late")
    with pytest.raises(client.exceptions.GoneException):
        client.get_connection(ConnectionId=connection_id)
    with pytest.raises(client.exceptions.GoneException):
        client.delete_connection(ConnectionId=connection_id)


def test_boto3_exception_classes(lgw, backend):
    api = build_api(lgw.store, backend.url)
    client = management_client(lgw, api)
    with pytest.raises(client.exceptions.GoneException) as gone:
        client.post_to_connection(ConnectionId="AAAAAAAAAAAAAAA=", Data=b"x")
    assert gone.value.response["Error"]["Code"] == "GoneException"
    for wrong in (management_client(lgw, api, stage="nostage"),):
        with pytest.raises(wrong.exceptions.ForbiddenException):
            wrong.post_to_connection(ConnectionId="AAAAAAAAAAAAAAA=", Data=b"x")
    with connect(ws_url(lgw, api)):
        connection_id = connection_id_of(backend)
        with pytest.raises(client.exceptions.PayloadTooLargeException):
            client.post_to_connection(ConnectionId=connection_id, Data=b"x" * (128 * 1024 + 1))
        client.post_to_connection(ConnectionId=connection_id, Data=b"x" * (128 * 1024))
    with pytest.raises(ClientError) as bad:
        client.post_to_connection(ConnectionId="not valid!", Data=b"x")
    assert bad.value.response["Error"]["Code"] == "BadRequestException"


def test_unknown_api_is_forbidden_and_wrong_api_is_gone(lgw, backend):
    api = build_api(lgw.store, backend.url)
    other = build_api(lgw.store, backend.url)
    with connect(ws_url(lgw, api)):
        connection_id = connection_id_of(backend)
        client = management_client(lgw, other)
        with pytest.raises(client.exceptions.GoneException):
            client.post_to_connection(ConnectionId=connection_id, Data=b"x")
    status, headers, body = raw(lgw, "POST", f"/nosuchapi/production/@connections/{connection_id}")
    assert (status, headers["x-amzn-errortype"], json.loads(body)) == (
        403,
        "ForbiddenException",
        {"message": "Forbidden"},
    )


def test_gone_is_an_empty_410_with_the_error_type(lgw, backend):
    api = build_api(lgw.store, backend.url)
    status, headers, body = raw(
        lgw, "POST", f"/{api.api_id}/production/@connections/AAAAAAAAAAAAAAA%3D"
    )
    assert (status, headers["x-amzn-errortype"], body) == (410, "GoneException", b"")
    assert headers["x-amzn-requestid"]


def test_percent_encoded_connections_and_ids(lgw, backend):
    api = build_api(lgw.store, backend.url)
    with connect(ws_url(lgw, api)) as ws:
        connection_id = connection_id_of(backend)
        encoded = connection_id.replace("=", "%3D").replace("-", "%2D")
        for prefix in ("@connections", "%40connections"):
            status, _, _ = raw(lgw, "POST", f"/{api.api_id}/production/{prefix}/{encoded}", b"m")
            assert status == 200
            assert ws.recv(timeout=5) == "m"


def test_unsigned_requests_are_refused(lgw, backend):
    api = build_api(lgw.store, backend.url)
    with connect(ws_url(lgw, api)) as ws:
        connection_id = connection_id_of(backend)
        path = f"/{api.api_id}/production/@connections/{connection_id}"
        connection = http.client.HTTPConnection("127.0.0.1", lgw.port, timeout=5)
        connection.request("POST", path, body=b"x")
        response = connection.getresponse()
        assert response.status == 403
        assert response.getheader("x-amzn-ErrorType") == "ForbiddenException"
        assert json.loads(response.read()) == {"message": "Missing Authentication Token"}
        # A presigned URL counts as signed.
        status, _, _ = raw(lgw, "POST", path + "?X-Amz-Signature=abc", b"ok")
        assert status == 200
        assert ws.recv(timeout=5) == "ok"


def test_chunked_pipelined_and_http10_requests(lgw, backend):
    api = build_api(lgw.store, backend.url)
    with connect(ws_url(lgw, api)) as ws:
        connection_id = connection_id_of(backend)
        path = f"/{api.api_id}/production/@connections/{connection_id}"
        # Chunked body (served by the aiohttp route).
        connection = http.client.HTTPConnection("127.0.0.1", lgw.port, timeout=5)
        connection.request("POST", path, body=iter([b"chu", b"nked"]), headers=SIGNED)
        assert connection.getresponse().status == 200
        assert ws.recv(timeout=5) == "chunked"
        # Three pipelined requests in one write, on one keep-alive connection.
        head = "\r\n".join(f"{k}: {v}" for k, v in SIGNED.items())
        one = f"POST {path} HTTP/1.1\r\nHost: x\r\n{head}\r\nContent-Length: 1\r\n\r\n"
        with socket.create_connection(("127.0.0.1", lgw.port), timeout=5) as sock:
            sock.sendall((one + "a" + one + "b" + one + "c").encode())
            answers = b""
            while answers.count(b"HTTP/1.1 200") < 3:
                answers += sock.recv(4096)
        assert [ws.recv(timeout=5) for _ in range(3)] == ["a", "b", "c"]
        # HTTP/1.0 without keep-alive: answered, then closed.
        with socket.create_connection(("127.0.0.1", lgw.port), timeout=5) as sock:
            sock.sendall(f"POST {path} HTTP/1.0\r\n{head}\r\nContent-Length: 1\r\n\r\nz".encode())
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200")
        assert ws.recv(timeout=5) == "z"
        # A management request then a control-plane/other request on the same connection.
        with socket.create_connection(("127.0.0.1", lgw.port), timeout=5) as sock:
            sock.sendall((one + "d" + "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n").encode())
            answers = b""
            while b"HTTP/1.1 403" not in answers:
                answers += sock.recv(4096)
            assert answers.startswith(b"HTTP/1.1 200")
        assert ws.recv(timeout=5) == "d"


def test_host_based_api_id(lgw, backend):
    api = build_api(lgw.store, backend.url)
    with connect(ws_url(lgw, api)) as ws:
        connection_id = connection_id_of(backend)
        status, _, _ = raw(
            lgw,
            "POST",
            f"/production/@connections/{connection_id}",
            b"by-host",
            headers={"Host": f"{api.api_id}.execute-api.localhost:{lgw.port}"},
        )
        assert status == 200
        assert ws.recv(timeout=5) == "by-host"


def test_other_methods_are_forbidden(lgw, backend):
    api = build_api(lgw.store, backend.url)
    status, headers, _ = raw(lgw, "PUT", f"/{api.api_id}/production/@connections/AAAAAAAAAAAAAAA=")
    assert (status, headers["x-amzn-errortype"]) == (403, "ForbiddenException")


def test_rate_limit_answers_429_limit_exceeded(backend):
    with GatewayThread(GatewayConfig(management_rate_limit=2)) as lgw:
        api = build_api(lgw.store, backend.url)
        client = management_client(lgw, api)
        with connect(ws_url(lgw, api)) as ws:
            connection_id = connection_id_of(backend)
            outcomes = []
            for _ in range(12):
                try:
                    client.post_to_connection(ConnectionId=connection_id, Data=b"x")
                    outcomes.append("ok")
                except client.exceptions.LimitExceededException:
                    outcomes.append("throttled")
            assert outcomes.count("ok") >= 2 and "throttled" in outcomes
            for _ in range(outcomes.count("ok")):
                assert ws.recv(timeout=5) == "x"
            time.sleep(0.6)  # the bucket refills at 2/s
            client.post_to_connection(ConnectionId=connection_id, Data=b"again")
            assert ws.recv(timeout=5) == "again"


def test_the_package_transport_reaches_the_gateway(lgw, backend, settings):
    """``LocalGatewayTransport`` (what ``TRANSPORT`` selects for a local gateway) delivers and
    reports gone connections."""
    from django_aws_api_gateway_websockets.transports import POST, Outcome, Target
    from django_aws_api_gateway_websockets.transports.aws import LocalGatewayTransport

    api = build_api(lgw.store, backend.url)
    endpoint = f"{lgw.http_url}/{api.api_id}/production"
    transport = LocalGatewayTransport(endpoint_url=endpoint)
    with connect(ws_url(lgw, api)) as one, connect(ws_url(lgw, api)) as two:
        ids = [connection_id_of(backend, 0), connection_id_of(backend, 1)]
        results = transport.call(
            POST, Target(endpoint, "us-east-1"), [*ids, "AAAAAAAAAAAAAAA="], b"broadcast"
        )
        outcomes = {r.connection_id: r.outcome for r in results}
        assert outcomes == {
            ids[0]: Outcome.OK,
            ids[1]: Outcome.OK,
            "AAAAAAAAAAAAAAA=": Outcome.GONE,
        }
        assert one.recv(timeout=5) == "broadcast" and two.recv(timeout=5) == "broadcast"


def test_delete_during_traffic_and_post_after_client_close(lgw, backend):
    api = build_api(lgw.store, backend.url)
    client = management_client(lgw, api)
    with connect(ws_url(lgw, api)):
        connection_id = connection_id_of(backend)
    backend.wait_for(lambda rs: any(r.path == "/disconnect" for r in rs))
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId=connection_id, Data=b"x")
    assert contract.CONNECTION_ID.name


def test_binary_data_and_large_messages(lgw, backend):
    api = build_api(lgw.store, backend.url)
    client = management_client(lgw, api)
    with connect(ws_url(lgw, api), max_size=None) as ws:
        connection_id = connection_id_of(backend)
        client.post_to_connection(ConnectionId=connection_id, Data=b"\xff\xfe\x00")
        assert ws.recv(timeout=5) == b"\xff\xfe\x00"  # not UTF-8: a binary frame
        big = "é" * 60_000  # 120,000 bytes: above 32 KB, one message
        client.post_to_connection(ConnectionId=connection_id, Data=big.encode())
        assert ws.recv(timeout=5) == big
        client.post_to_connection(ConnectionId=connection_id, Data=b"")
        assert ws.recv(timeout=5) == ""


def test_last_active_moves_with_traffic_in_either_direction(lgw, backend):
    api = build_api(lgw.store, backend.url)
    client = management_client(lgw, api)
    with connect(ws_url(lgw, api)) as ws:
        connection_id = connection_id_of(backend)
        first = client.get_connection(ConnectionId=connection_id)["LastActiveAt"]
        time.sleep(0.05)
        ws.send("{}")
        backend.wait_for(lambda rs: any(r.path == "/default" for r in rs))
        second = client.get_connection(ConnectionId=connection_id)["LastActiveAt"]
        assert second > first
        time.sleep(0.05)
        client.post_to_connection(ConnectionId=connection_id, Data=b"x")
        third = client.get_connection(ConnectionId=connection_id)
        assert third["LastActiveAt"] > second
        assert (
            third["ConnectedAt"] == client.get_connection(ConnectionId=connection_id)["ConnectedAt"]
        )


def test_broadcast_to_many_connections_and_their_messages_in_order(lgw, backend):
    """100 clients each send 20 numbered messages (two-way echo) while the package transport
    broadcasts to all of them: nothing lost, each connection's replies in order."""
    import asyncio

    from websockets.asyncio.client import connect as aconnect

    from django_aws_api_gateway_websockets.transports import POST, Outcome, Target
    from django_aws_api_gateway_websockets.transports.aws import LocalGatewayTransport

    backend.replies["/default"] = lambda r: Reply(body=r.body)
    api = build_api(lgw.store, backend.url, routes=("$default",), two_way=("$default",))
    endpoint = f"{lgw.http_url}/{api.api_id}/production"
    clients, messages = 100, 20

    async def main() -> None:
        sockets = [await aconnect(ws_url(lgw, api)) for _ in range(clients)]
        ids = [
            c.connection_id
            for c in lgw.gateway.data_plane.connections.values()
            if c.api_id == api.api_id
        ]
        assert len(ids) == clients

        async def talk(number: int, ws) -> list[str]:
            for seq in range(messages):
                await ws.send(json.dumps({"n": number, "seq": seq}))
            got = [await asyncio.wait_for(ws.recv(), 10) for _ in range(messages + 1)]
            await ws.close()
            return got

        transport = LocalGatewayTransport(endpoint_url=endpoint)
        broadcast = asyncio.to_thread(
            transport.call, POST, Target(endpoint, "us-east-1"), ids, b"everyone"
        )
        results, *replies = await asyncio.gather(
            broadcast, *(talk(n, ws) for n, ws in enumerate(sockets))
        )
        assert all(r.outcome is Outcome.OK for r in results) and len(results) == clients
        for number, got in enumerate(replies):
            assert got.count("everyone") == 1
            echoed = [json.loads(m) for m in got if m != "everyone"]
            assert echoed == [{"n": number, "seq": seq} for seq in range(messages)]

    asyncio.run(main())


def test_the_aiohttp_route_answers_like_the_fast_path(lgw, backend):
    """Requests the fast path hands over (execute-api host names, very large bodies) get the
    same answers."""
    api = build_api(lgw.store, backend.url)
    host = {"Host": f"{api.api_id}.execute-api.localhost:{lgw.port}"}
    with connect(ws_url(lgw, api), user_agent_header="UA/2") as ws:
        connection_id = connection_id_of(backend)
        path = f"/production/@connections/{connection_id}"
        status, headers, body = raw(lgw, "GET", path, headers=host)
        assert status == 200 and json.loads(body)["identity"]["userAgent"] == "UA/2"
        status, headers, _ = raw(lgw, "POST", path, b"x" * 250_000, headers=host)
        assert (status, headers["x-amzn-errortype"]) == (413, "PayloadTooLargeException")
        status, headers, _ = raw(lgw, "PATCH", path, headers=host)
        assert (status, headers["x-amzn-errortype"]) == (403, "ForbiddenException")
        status, _, _ = raw(lgw, "DELETE", path, headers=host)
        assert status == 204
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        status, headers, body = raw(lgw, "GET", path, headers=host)
        assert (status, headers["x-amzn-errortype"], body) == (410, "GoneException", b"")
