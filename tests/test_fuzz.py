"""Property tests: whatever reaches a WebSocket view, the answer is never a server error.

The view's URL is public and everything in an integration request is attacker-controlled except
the gateway secret, so bodies, headers, query strings and route slugs are drawn at random (with
the genuine value mixed in, so the deeper steps run too). Two properties hold for every input:

* the status is below 500 (an unhandled exception propagates out of the test client and fails
  the test with its traceback; a 5xx response fails the status assertion);
* a 4xx answer leaves the session table exactly as it was.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import sys
from urllib.parse import quote

import pytest
from django.conf import settings
from django.test import Client
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from django_aws_api_gateway_websockets import contract
from django_aws_api_gateway_websockets.models import RateLimitWindow, WebSocketSession
from django_aws_api_gateway_websockets.testing import GatewayClient, new_connection_id
from django_aws_api_gateway_websockets.tokens import mint_token
from tests.views import ChatView

pytestmark = pytest.mark.django_db

SECRET: str = settings.GATEWAY_SECRET
REAL_API_ID = "abc123def4"  # the ``gateway`` fixture's

fuzz = hsettings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(autouse=True)
def _generous_limits(settings):
    # Limits far above what a run reaches: the rate-limit statements still run on every connect,
    # but a 429 after the first sixty examples would hide every later step from the fuzzer.
    settings.AWS_API_GATEWAY_WEBSOCKETS = {
        "GATEWAY_SECRETS": [SECRET],
        "CONNECT_LIMIT_PER_IP": 10**9,
        "CONNECT_LIMIT_PER_USER": 10**9,
        "LAST_SEEN_UPDATE_INTERVAL": 0,
    }


@pytest.fixture
def live(ws, token) -> GatewayClient:
    """A connected session (user ``alice``) that message examples can address."""
    assert ws.connect(token=token).status_code == 200
    return ws


def _sessions() -> list[dict]:
    return list(WebSocketSession.objects.order_by("pk").values())


def _post(path: str, *, headers: dict, body: bytes = b"", content_type: str, **meta: str):
    """A raw request; ``meta`` adds WSGI environ entries (``QUERY_STRING``, ``CONTENT_LENGTH``)."""
    return Client().generic(
        contract.INTEGRATION_METHOD,
        path,
        data=body,
        content_type=content_type,
        **contract.as_meta(headers),
        **meta,
    )


def _check(response, before: list[dict]) -> None:
    assert 200 <= response.status_code < 500, (response.status_code, response.content[:500])
    if 400 <= response.status_code < 500:
        assert _sessions() == before, "a refused request changed the session table"


# Strategies --------------------------------------------------------------------------------------

# Header values as a WSGI server hands them to Django (PEP 3333): latin-1 text, one character per
# byte. CR, LF and NUL are left out: RFC 9110 (5.5) forbids them in field values and HTTP servers
# reject or split such headers, so no request carrying them reaches a view. Django's test client
# would copy them into META unchecked and we would be testing requests that cannot exist. Other
# C0 controls and DEL are invalid field characters for the same reason; HTAB is allowed.
HEADER_CHAR = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
header_text = st.text(st.one_of(HEADER_CHAR, st.just("\t")), max_size=700)


class Keep(enum.Enum):
    """Leave the genuine header value as it is, or leave the header out."""

    GENUINE = "genuine"
    ABSENT = "absent"


def header(*interesting: str) -> st.SearchStrategy:
    return st.one_of(
        st.just(Keep.GENUINE),
        st.just(Keep.ABSENT),
        st.sampled_from(interesting) if interesting else st.nothing(),
        header_text,
    )


connection_ids = header(
    "",
    "a",
    "a" * 128,
    "a" * 129,
    "=",
    "-_-",
    "abc.def",
    "abc def",
    "ａｂｃ",  # noqa: RUF001 - fullwidth letters, which str.isalnum() accepts
    "é" * 16,
)
api_ids = header(
    REAL_API_ID,
    REAL_API_ID.upper(),
    REAL_API_ID + " ",
    "nosuchapi0",
    "a" * 32,
    "a" * 33,
    "abc-123",
    "",
)
source_ips = header(
    "203.0.113.10",
    " 203.0.113.10 ",
    "2001:db8::1",
    "::ffff:203.0.113.10",
    "::",
    "0.0.0.0",
    "255.255.255.255",
    "203.0.113.010",
    "999.1.1.1",
    "1.2.3",
    "fe80::1%eth0",
    "fe80::1%" + "x" * 300,
    "2001:db8::1/64",
    "203.0.113.10, 198.51.100.1",
    "localhost",
)
secrets_ = header(SECRET, SECRET.upper(), SECRET[:-1], SECRET + "x", " " + SECRET, "é" + SECRET)
user_agents = header("", "Mozilla/5.0", "é" * 513, "x" * 5000, "AmazonAPIGateway_abc123def4")
content_lengths = header(
    "",
    "0",
    "-1",
    "-99999999999999999999",
    " 0 ",
    "1_0",
    "0x10",
    "1e3",
    "١",  # noqa: RUF001 - an Arabic-Indic digit, which int() accepts
    "9" * 5000,
    str(contract.MAX_MESSAGE_BYTES),
    str(contract.MAX_MESSAGE_BYTES + 1),
    str(10**30),
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.text(max_size=10), children, max_size=6),
    ),
    max_leaves=40,
)
handler_names = st.one_of(
    st.sampled_from(sorted(dir(ChatView))),
    st.sampled_from(["echo", "whoami", "default", "secret_method", "", " echo", "ECHO"]),
    json_values,
)


def _dumps(value: object) -> str:
    return json.dumps(value, allow_nan=True)


@st.composite
def deep_json(draw) -> str:
    """Nesting from shallow to ~10000 levels, densest around Python's recursion limit."""
    depth = draw(
        st.one_of(
            st.integers(0, 10_000),
            st.integers(850, 1_050),
            st.sampled_from([100, 500, 999, 1_000, 1_001, 10_000]),
        )
    )
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    inner = opener * depth + "0" + closer * depth
    wrapper = draw(st.sampled_from(["{}", '{{"action": "echo", "x": {}}}', '{{"handler": {}}}']))
    return wrapper.format(inner)


@st.composite
def huge_numbers(draw) -> str:
    digits = draw(st.integers(1, 10_000))
    number = draw(
        st.sampled_from(
            [
                "1" * digits,
                "-" + "9" * digits,
                "0." + "1" * digits,
                f"1e{digits}",
                f"-1e-{digits}",
                "1" * digits + ".5e" + str(digits),
            ]
        )
    )
    wrapper = draw(st.sampled_from(["{}", '{{"action": "echo", "n": {}}}', '{{"action": {}}}']))
    return wrapper.format(number)


text_bodies = st.one_of(
    st.text(max_size=2_000),
    json_values.map(_dumps),
    st.fixed_dictionaries({"handler": handler_names}, optional={"x": json_values}).map(_dumps),
    st.fixed_dictionaries({"action": handler_names}, optional={"x": json_values}).map(_dumps),
    st.fixed_dictionaries({"handler": handler_names, "action": handler_names}).map(_dumps),
    deep_json(),
    huge_numbers(),
    st.sampled_from(["", " ", "null", "{", "[", '{"action":', "\ufeff{}", "NaN", "-Infinity"]),
)
bodies = st.one_of(
    text_bodies.map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.binary(max_size=2_000),
    st.integers(contract.MAX_MESSAGE_BYTES - 2, contract.MAX_MESSAGE_BYTES + 2).map(
        lambda size: b"x" * size
    ),
)
content_types = st.sampled_from(
    [
        "application/json",
        "text/plain",
        "text/plain; charset=latin-1",
        "application/octet-stream",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "multipart/form-data",
        "",
    ]
)


def _declared_length_overreads(value: object, body: bytes) -> bool:
    """Would Django read past the end of the test client's payload?

    The test client's ``FakePayload`` asserts when a view reads more bytes than the body holds,
    an ``AssertionError`` no real server raises (a WSGI server would wait for the missing bytes
    and then time the client out). Content-Lengths above 128 KB are refused before the body is
    read, so only declared lengths between the real one and the limit are left out.
    """
    if not isinstance(value, str):
        return False
    try:
        declared = int(value)
    except ValueError:
        return False
    return len(body) < declared <= contract.MAX_MESSAGE_BYTES


def _apply(headers: dict, name: str, value: object) -> None:
    if value is Keep.ABSENT:
        headers.pop(name, None)
    elif value is not Keep.GENUINE:
        headers[name] = value


# Properties --------------------------------------------------------------------------------------

DEFAULT_REPLY = {"handler": "default", "user": "alice"}


@fuzz
@given(body=bodies, content_type=content_types)
def test_message_bodies(live, body, content_type):
    before = _sessions()
    response = _post(
        "/ws/default",
        headers=live.headers(contract.DEFAULT),
        body=body,
        content_type=content_type,
    )
    _check(response, before)
    if response.status_code == 200:
        # Only a handler ChatView allows can have answered: default, echo, whoami or the
        # built-in keep-alive ping (an empty answer); a request_id gets the reply envelope.
        if response["Content-Type"].startswith("application/json"):
            reply = json.loads(response.content)
            if isinstance(reply, dict) and reply.get("type") == "reply" and "request_id" in reply:
                reply = reply["data"]
            assert reply in (DEFAULT_REPLY, "alice", None) or reply["handler"] == "echo", reply
        else:
            assert response.content in (b"alice", b""), response.content[:200]
    assert WebSocketSession.objects.count() == 1


@fuzz
@given(
    route_key=st.sampled_from([contract.CONNECT, contract.DISCONNECT, contract.DEFAULT, "echo"]),
    connection_id=connection_ids,
    api_id=api_ids,
    aws_api_id=api_ids,
    source_ip=source_ips,
    secret=secrets_,
    user_agent=user_agents,
    content_length=content_lengths,
    body=st.one_of(st.just(b""), bodies),
    reuse_id=st.booleans(),
)
def test_header_values(
    live,
    user,
    route_key,
    connection_id,
    api_id,
    aws_api_id,
    source_ip,
    secret,
    user_agent,
    content_length,
    body,
    reuse_id,
):
    assume(not _declared_length_overreads(content_length, body))
    fresh_id = new_connection_id()
    # Address the live session (a repeated $connect, its messages) or a connection never seen.
    headers = live.headers(route_key, live.connection_id if reuse_id else fresh_id)
    _apply(headers, contract.CONNECTION_ID.name, connection_id)
    _apply(headers, contract.API_ID.name, api_id)
    _apply(headers, contract.AWS_API_ID_HEADER, aws_api_id)
    _apply(headers, contract.SOURCE_IP.name, source_ip)
    _apply(headers, contract.GATEWAY_SECRET_HEADER, secret)
    _apply(headers, contract.USER_AGENT.name, user_agent)
    _apply(headers, "Content-Length", content_length)
    query = f"ws_token={mint_token(user).token}" if route_key == contract.CONNECT else ""
    path = "/ws/" + contract.route_slug(route_key) + (f"?{query}" if query else "")
    before = _sessions()
    response = _post(path, headers=headers, body=body, content_type="application/json")
    _check(response, before)
    if response.status_code == 200 and route_key == contract.CONNECT:
        sent_id = headers[contract.CONNECTION_ID.name]
        session = WebSocketSession.objects.get(connection_id=sent_id)
        assert session.connected and session.user == user


def _query_pair(key: str, value: str, raw: bool) -> str:
    if raw:
        return f"{key}={value}"
    return f"{quote(key, safe='')}={quote(value, safe='')}"


query_keys = st.one_of(
    st.sampled_from([contract.CHANNEL_QUERY_PARAM, contract.TOKEN_QUERY_PARAM]),
    st.text(max_size=20),
)
query_values = st.one_of(
    st.text(max_size=200),
    st.sampled_from(["%", "%%", "%zz", "%ff%fe", "%00", "%C3%A9", "%ED%A0%80", "+", "&", "=", ";"]),
    st.sampled_from(["general", "staff-room", "a" * 100, "a" * 101, "lobby"]),
)


@st.composite
def query_strings(draw, token: str) -> str:
    pairs = draw(st.lists(st.tuples(query_keys, query_values, st.booleans()), max_size=12))
    parts = [_query_pair(key, value, raw) for key, value, raw in pairs]
    if draw(st.booleans()):
        # The genuine token somewhere among the (possibly repeated) keys.
        parts.insert(draw(st.integers(0, len(parts))), f"ws_token={token}")
    filler = draw(st.sampled_from([0, 0, 0, 999, 1_000, 1_001, 5_000]))
    parts += [f"f{i}=1" for i in range(filler)]
    separator = draw(st.sampled_from(["&", ";", "&&"]))
    # WSGI's QUERY_STRING is latin-1 text: the bytes as sent, one character per byte.
    return separator.join(parts).encode("utf-8", "surrogatepass").decode("latin-1")


@fuzz
@given(data=st.data(), path=st.sampled_from(["/ws/", "/public/", "/anon/", "/anyperm/"]))
def test_connect_query_strings(gateway, user, data, path):
    token = mint_token(user).token
    query = data.draw(query_strings(token), label="query")
    ws = GatewayClient(Client(), gateway, path=path)
    before = _sessions()
    response = _post(
        ws.path + "connect",
        headers=ws.headers(contract.CONNECT),
        content_type="application/json",
        QUERY_STRING=query,
    )
    _check(response, before)
    if response.status_code == 200:
        session = WebSocketSession.objects.get(connection_id=ws.connection_id)
        assert session.connected
        assert len(session.channel_name) <= 100


slugs = st.one_of(
    st.sampled_from(["connect", "disconnect", "default", "echo", "whoami", "CONNECT", "-", "_"]),
    st.from_regex(r"\A[-a-zA-Z0-9_]{1,300}\Z"),
    st.text(min_size=1, max_size=100),
)


@fuzz
@given(
    slug=slugs,
    prefix=st.sampled_from(["/ws/", "/public/", "/anon/", "/allperm/"]),
    route_key=st.sampled_from([contract.CONNECT, contract.DISCONNECT, contract.DEFAULT, "x"]),
    body=st.one_of(st.just(b""), bodies),
)
def test_route_slugs(live, slug, prefix, route_key, body):
    headers = live.headers(route_key)
    before = _sessions()
    response = _post(
        prefix + quote(slug, safe=""), headers=headers, body=body, content_type="application/json"
    )
    _check(response, before)


# Deterministic sweeps of the edges random search hits too rarely ---------------------------------


@pytest.mark.parametrize(
    "template",
    ['{{"action": "echo", "x": {}}}', "{}"],
    ids=["echoed", "bare"],
)
@pytest.mark.parametrize("opener,closer", [("[", "]"), ('{"a":', "}")], ids=["arrays", "objects"])
def test_every_nesting_depth_around_the_recursion_limit(live, template, opener, closer):
    """Each depth from well below to above the interpreter's recursion limit, one by one.

    Where exactly parsing or re-encoding runs out of stack depends on how deep the call stack
    already is (test runner, middleware, server), so a random depth finds the edge only by luck;
    a sweep finds it wherever it is. ``echo`` sends the parsed message back, so the reply has to
    be encoded as deep as the message was parsed.
    """
    limit = sys.getrecursionlimit()
    failures = []
    for depth in range(limit - 300, limit + 50):
        body = template.format(opener * depth + "0" + closer * depth)
        try:
            status = live.message(body).status_code
        except Exception as exc:  # the test client re-raises what the view raised
            failures.append((depth, type(exc).__name__))
            continue
        if not 200 <= status < 500:
            failures.append((depth, status))
    assert failures == [], f"{len(failures)} depths failed, first: {failures[:3]}"
    assert WebSocketSession.objects.count() == 1


@pytest.mark.parametrize(
    "source_ip",
    [
        "fe80::1%eth0",
        "fe80::1%1",
        "fe80::1%" + "x" * 300,
        "::ffff:203.0.113.10",
        "2001:db8::1",
        "0.0.0.0",
        "::",
    ],
    ids=lambda ip: ip if len(ip) < 40 else "fe80::1%<300 characters>",
)
def test_unusual_but_parseable_source_ips(gateway, source_ip):
    """Addresses ``ipaddress`` accepts: refused cleanly, or counted under the address stored.

    The per-IP limit must count the same address the session records; a zone id (``%eth0``)
    that is dropped from the stored address but kept in the key would give every zone id its
    own budget, and a long one does not fit the key column.
    """
    ws = GatewayClient(Client(), gateway, path="/public/", source_ip=source_ip)
    before = _sessions()
    response = ws.connect()
    _check(response, before)
    if response.status_code == 200:
        session = WebSocketSession.objects.get(connection_id=ws.connection_id)
        session.full_clean()
        keys = list(RateLimitWindow.objects.values_list("key", flat=True))
        assert len(keys) == 1 and keys[0].startswith("connect:ip:"), keys
        # The key is the stored address (an IPv4-mapped one as IPv4) or its IPv6 /64: never a
        # zone id, which would give every zone id its own budget.
        counted = ipaddress.ip_network(keys[0].removeprefix("connect:ip:"))
        stored = ipaddress.ip_address(session.source_ip)
        if isinstance(stored, ipaddress.IPv6Address) and stored.ipv4_mapped is not None:
            stored = stored.ipv4_mapped
        assert stored in counted, (keys, session.source_ip)
        assert counted.prefixlen in (32, 64), keys
