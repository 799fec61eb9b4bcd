"""Property tests: the frame guard judges a byte stream the same however TCP splits it, and the
Management API's fast path never raises on arbitrary bytes."""

from __future__ import annotations

import asyncio
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from django_aws_api_gateway_websockets.local_gateway.config import GatewayConfig
from django_aws_api_gateway_websockets.local_gateway.dataplane import MAX_FRAME_BYTES, FrameGuard
from django_aws_api_gateway_websockets.local_gateway.fastpath import Sniffer
from django_aws_api_gateway_websockets.local_gateway.server import LocalGateway


class Parser:
    def __init__(self) -> None:
        self.fed = b""

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.fed += data
        return False, b""

    def feed_eof(self) -> None:
        pass


class Queue:
    def __init__(self) -> None:
        self.error = None

    def set_exception(self, exc: BaseException) -> None:
        self.error = exc


def client_frame(opcode: int, length: int, fin: bool = True, masked: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if masked else 0
    if length < 126:
        head = bytes((first, mask_bit | length))
    elif length < 65536:
        head = bytes((first, mask_bit | 126)) + length.to_bytes(2, "big")
    else:
        head = bytes((first, mask_bit | 127)) + length.to_bytes(8, "big")
    return head + (os.urandom(4) if masked else b"") + b"a" * length


frames = st.lists(
    st.tuples(
        st.sampled_from([0x1, 0x0, 0x2, 0x9, 0xA]),
        st.sampled_from([0, 1, 125, 126, 127, 65535, MAX_FRAME_BYTES, MAX_FRAME_BYTES + 1]),
        st.booleans(),
    ),
    min_size=1,
    max_size=6,
)


def expected_code(spec: list[tuple[int, int, bool]]) -> int | None:
    for opcode, length, masked in spec:
        if not masked:
            return 1002
        if opcode == 0x2:
            return 1003
        if opcode in (0x0, 0x1) and length > MAX_FRAME_BYTES:
            return 1009
    return None


@settings(max_examples=150, deadline=None)
@given(spec=frames, cuts=st.lists(st.integers(min_value=0, max_value=200_000), max_size=8))
def test_frame_guard_is_independent_of_chunking(spec, cuts):
    spec = [(op, min(n, 125) if op >= 0x8 else n, masked) for op, n, masked in spec]
    stream = b"".join(client_frame(op, n, masked=masked) for op, n, masked in spec)
    parser, queue = Parser(), Queue()
    guard = FrameGuard(parser, queue)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    for chunk in chunks:
        if chunk:
            guard.feed_data(chunk)
    code = expected_code(spec)
    if code is None:
        assert queue.error is None
        assert parser.fed == stream
    else:
        assert queue.error is not None and queue.error.code == code


class Transport:
    def __init__(self) -> None:
        self.out = b""
        self.closed = False
        self.protocol = None

    def write(self, data: bytes) -> None:
        self.out += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def set_protocol(self, protocol) -> None:
        self.protocol = protocol


class Fallback:
    def __init__(self) -> None:
        self.data = b""

    def connection_made(self, transport) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        self.data += data


@settings(max_examples=200, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=600),
        st.builds(
            lambda method, path, headers, body: (
                f"{method} {path} HTTP/1.1\r\n{headers}\r\n\r\n".encode("latin-1") + body
            ),
            st.sampled_from(["POST", "GET", "DELETE", "PUT", "POS"]),
            st.sampled_from(
                ["/a/b/@connections/x", "/a/b/%40connections/AAAAAAAAAAAAAAA%3D", "/a/b", "/"]
            ),
            st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
            st.binary(max_size=40),
        ),
    ),
    split=st.integers(min_value=0, max_value=600),
)
def test_fast_path_never_raises(data, split):
    async def run() -> None:
        gateway = LocalGateway(GatewayConfig())
        fallback = Fallback()
        sniffer = Sniffer(gateway.management, lambda: fallback, set())
        transport = Transport()
        sniffer.connection_made(transport)
        for part in (data[:split], data[split:]):
            if part and transport.protocol is None and not transport.closed:
                sniffer.data_received(part)
            elif part and transport.protocol is not None:
                fallback.data_received(part)
        # Whatever was not answered went to aiohttp, byte for byte.
        assert transport.out.startswith(b"HTTP/1.1 ") or not transport.out
        if transport.protocol is not None:
            assert data.endswith(fallback.data)

    asyncio.run(run())
