"""The asyncio HTTP/1.1 client of the Management API transport, with ``httptools`` parsing.

Parser-level properties are checked by feeding a connection's protocol object directly (every
split point of a response, chunked bodies, malformed and oversized headers); connection-level
ones against real sockets on 127.0.0.1 (early close, reuse after an error, keep-alive, TLS).
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import ssl
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_aws_api_gateway_websockets.transports import http
from django_aws_api_gateway_websockets.transports.http import (
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    ConnectionPool,
    ProtocolError,
    Response,
    request,
)

HEAD = b"POST /production/@connections/abc HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"


class _FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _feed(pieces: list[bytes], *, then_close: bool = False) -> tuple[Any, http._Connection]:
    """Run ``pieces`` through a fresh connection; return the outcome (Response or exception)."""
    loop = asyncio.new_event_loop()
    try:
        connection = http._Connection(loop)
        connection.connection_made(_FakeTransport())
        waiter = connection.send(HEAD)
        for piece in pieces:
            connection.data_received(piece)
        if then_close:
            connection.connection_lost(None)
        if not waiter.done():
            return None, connection
        exc = waiter.exception()
        return (exc if exc is not None else waiter.result()), connection
    finally:
        loop.close()


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


OK_JSON = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-amzn-RequestId: r-1\r\n"
    b'Content-Length: 17\r\n\r\n{"connectedAt":1}'
)
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
)
GONE = (
    b"HTTP/1.1 410 Gone\r\nx-amzn-ErrorType: GoneException:http://internal.amazon.com/\r\n"
    b"Content-Length: 0\r\n\r\n"
)


# -- every split point ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "body"),
    [(OK_JSON, 200, b'{"connectedAt":1}'), (CHUNKED, 200, b"hello world"), (GONE, 410, b"")],
    ids=["content-length", "chunked", "gone"],
)
def test_every_single_split_point_gives_the_same_response(raw, status, body):
    for cut in range(len(raw) + 1):
        outcome, connection = _feed([raw[:cut], raw[cut:]])
        assert isinstance(outcome, Response), (cut, outcome)
        assert (outcome.status, outcome.body) == (status, body), cut
        assert connection.reusable, cut


def test_byte_by_byte():
    outcome, _ = _feed([bytes([b]) for b in CHUNKED])
    assert outcome.body == b"hello world"
    assert "x-trailer" not in outcome.headers  # trailers are not headers


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.binary(max_size=2000),
    chunk_sizes=st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=20),
    cuts=st.lists(st.integers(min_value=0), max_size=12),
    chunked=st.booleans(),
    status=st.sampled_from([200, 400, 403, 404, 410, 413, 429, 500, 503]),
)
def test_any_body_any_split(body, chunk_sizes, cuts, chunked, status):
    if chunked:
        encoded, rest, sizes = b"", body, iter(chunk_sizes * (len(body) + 1))
        while rest:
            size = next(sizes)
            encoded += b"%x\r\n%s\r\n" % (len(rest[:size]), rest[:size])
            rest = rest[size:]
        raw = b"HTTP/1.1 %d X\r\nTransfer-Encoding: chunked\r\n\r\n%s0\r\n\r\n" % (status, encoded)
    else:
        raw = b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)
    outcome, connection = _feed(_split(raw, cuts))
    assert isinstance(outcome, Response)
    assert (outcome.status, outcome.body) == (status, body)
    assert connection.reusable


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(min_size=1, max_size=200), cuts=st.lists(st.integers(min_value=0)))
def test_garbage_is_an_error_or_incomplete_never_a_crash(garbage, cuts):
    outcome, connection = _feed(_split(garbage, cuts), then_close=True)
    # Whatever the bytes, the caller gets an answer or a ProtocolError; nothing else escapes.
    assert isinstance(outcome, (Response, ProtocolError)), outcome
    if isinstance(outcome, ProtocolError):
        assert not connection.reusable


# -- malformed and oversized ------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/9.9 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",  # obsolete folding
        b"SMTP ready\r\n",
    ],
)
def test_malformed_responses_are_protocol_errors(raw):
    outcome, connection = _feed([raw])
    assert isinstance(outcome, ProtocolError), outcome
    assert not connection.reusable
    assert connection.transport.closed


def test_oversized_header_block_is_refused_before_it_ends():
    big = b"X-Filler: " + b"a" * 1000 + b"\r\n"
    raw = b"HTTP/1.1 200 OK\r\n" + big * (MAX_HEADER_BYTES // len(big) + 2)
    outcome, connection = _feed([raw])  # no blank line yet: refused on size alone
    assert isinstance(outcome, ProtocolError)
    assert "header" in str(outcome)
    assert connection.transport.closed


def test_oversized_body_is_refused():
    size = MAX_BODY_BYTES + 1
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"a" * size
    outcome, _ = _feed([raw])
    assert isinstance(outcome, ProtocolError)
    assert "body" in str(outcome)


def test_repeated_headers_are_combined_and_names_lowercased():
    raw = b"HTTP/1.1 200 OK\r\nVia: a\r\nVIA: b\r\nContent-Length: 0\r\n\r\n"
    outcome, _ = _feed([raw])
    assert outcome.headers["via"] == "a, b"


def test_interim_100_continue_is_skipped():
    raw = b"HTTP/1.1 100 Continue\r\n\r\n" + GONE
    outcome, _ = _feed([raw])
    assert outcome.status == 410


def test_connection_close_header_makes_the_connection_not_reusable():
    raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    outcome, connection = _feed([raw])
    assert outcome.body == b"ok"
    assert not connection.reusable


def test_body_delimited_by_close():
    outcome, connection = _feed([b"HTTP/1.1 200 OK\r\n\r\npartial", b" body"])
    assert outcome is None  # still reading until the server closes
    outcome, connection = _feed([b"HTTP/1.1 200 OK\r\n\r\npartial", b" body"], then_close=True)
    assert outcome.body == b"partial body"
    assert not connection.reusable


@pytest.mark.parametrize("cut", [5, 20, len(OK_JSON) - 3])
def test_early_close_is_a_protocol_error(cut):
    outcome, _ = _feed([OK_JSON[:cut]], then_close=True)
    assert isinstance(outcome, ProtocolError)
    assert "closed" in str(outcome)


def test_unsolicited_bytes_close_the_connection():
    loop = asyncio.new_event_loop()
    try:
        connection = http._Connection(loop)
        connection.connection_made(_FakeTransport())
        connection.data_received(GONE)
        assert connection.transport.closed
        assert not connection.reusable
    finally:
        loop.close()


# -- real sockets -----------------------------------------------------------------------------


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def _run(handler: Handler, client: Callable[[int], Any], tls: ssl.SSLContext | None = None) -> Any:
    async def main() -> Any:
        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)
        port = server.sockets[0].getsockname()[1]
        try:
            return await client(port)
        finally:
            server.close()

    return asyncio.run(main())


def test_keep_alive_reuses_one_connection():
    accepted = []

    async def handler(reader, writer):
        accepted.append(1)
        while True:
            try:
                await _read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(OK_JSON)
            await writer.drain()

    async def client(port):
        pool = ConnectionPool("127.0.0.1", port, False)
        responses = [await request(pool, HEAD, b"", 5) for _ in range(5)]
        pool.close()
        return responses

    responses = _run(handler, client)
    assert [r.status for r in responses] == [200] * 5
    assert accepted == [1]


def test_a_connection_that_failed_is_not_reused():
    """The first connection answers garbage; the next request must get a fresh connection and a
    clean answer, never bytes left over from the broken one."""
    accepted = []

    async def handler(reader, writer):
        accepted.append(1)
        await _read_request(reader)
        if len(accepted) == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: zz\r\n\r\n" + GONE)
        else:
            writer.write(OK_JSON)
        await writer.drain()
        try:
            await reader.read()
        finally:
            writer.close()

    async def client(port):
        pool = ConnectionPool("127.0.0.1", port, False)
        with pytest.raises(ProtocolError):
            await request(pool, HEAD, b"", 5)
        second = await request(pool, HEAD, b"", 5)
        pool.close()
        return second

    second = _run(handler, client)
    assert second.status == 200
    assert len(accepted) == 2


def test_server_closing_mid_body_raises_and_the_next_request_reconnects():
    accepted = []

    async def handler(reader, writer):
        accepted.append(1)
        await _read_request(reader)
        if len(accepted) == 1:
            writer.write(OK_JSON[:-5])
            await writer.drain()
            writer.close()
            return
        writer.write(OK_JSON)
        await writer.drain()

    async def client(port):
        pool = ConnectionPool("127.0.0.1", port, False)
        with pytest.raises(ProtocolError):
            await request(pool, HEAD, b"", 5)
        second = await request(pool, HEAD, b"", 5)
        pool.close()
        return second

    assert _run(handler, client).status == 200


def test_a_timed_out_connection_is_closed_not_pooled():
    async def handler(reader, writer):
        await _read_request(reader)
        await asyncio.sleep(1)

    async def client(port):
        pool = ConnectionPool("127.0.0.1", port, False)
        with pytest.raises(TimeoutError):
            await request(pool, HEAD, b"", 0.05)
        return pool.idle

    assert _run(handler, client) == []


def _self_signed(tmp_path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(_ip())]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


def _ip() -> Any:
    import ipaddress

    return ipaddress.ip_address("127.0.0.1")


def test_tls_split_responses_and_keep_alive(tmp_path):
    """Over TLS the records split the answer wherever they like; the result is the same, and
    the certificate is verified (a client that does not trust it is refused)."""
    server_tls, client_tls = _self_signed(tmp_path)

    async def handler(reader, writer):
        while True:
            try:
                await _read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            for i in range(0, len(CHUNKED), 7):
                writer.write(CHUNKED[i : i + 7])
                await writer.drain()

    async def client(port):
        pool = ConnectionPool("127.0.0.1", port, True)
        pool.ssl = client_tls
        answers = [await request(pool, HEAD, b"", 5) for _ in range(3)]
        reused = len(pool.idle)
        pool.close()
        untrusting = ConnectionPool("127.0.0.1", port, True)
        with pytest.raises(ssl.SSLCertVerificationError):
            await request(untrusting, HEAD, b"", 5)
        return answers, reused

    answers, reused = _run(handler, client, tls=server_tls)
    assert [a.body for a in answers] == [b"hello world"] * 3
    assert reused == 1
