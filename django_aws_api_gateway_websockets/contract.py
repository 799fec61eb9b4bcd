"""The contract between API Gateway and Django: the one place that names what an integration sends.

API Gateway does not forward the connection id or anything trustworthy about the client unless an
integration maps it with ``RequestParameters`` (reference: "request parameter mapping" in the AWS
WebSocket API docs). This module declares those mappings once. Provisioning writes
:func:`integration_request_parameters` onto every integration, the local gateway applies the same
mapping, the test helpers build requests with :func:`integration_headers`, and
:mod:`.events` reads the headers back. No other module may spell these header names.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

#: API Gateway's hard limits (see "quotas" in the AWS reference).
MAX_MESSAGE_BYTES = 128 * 1024
MAX_CONNECTION_SECONDS = 2 * 60 * 60
IDLE_TIMEOUT_SECONDS = 10 * 60
INTEGRATION_TIMEOUT_MILLIS = 29_000
#: A mapped value may not exceed 512 characters (``StringWithLengthBetween1And512``).
MAX_MAPPED_VALUE_LENGTH = 512

#: The HTTP method every integration uses to call Django.
INTEGRATION_METHOD = "POST"
INTEGRATION_TYPE = "HTTP_PROXY"

CONNECT = "$connect"
DISCONNECT = "$disconnect"
DEFAULT = "$default"

#: Route key -> the ``route`` URL slug Django sees for it (``$`` is not valid in a slug).
SYSTEM_ROUTE_SLUGS: dict[str, str] = {
    CONNECT: "connect",
    DISCONNECT: "disconnect",
    DEFAULT: "default",
}

#: The query-string parameters a browser uses on ``$connect``.
CHANNEL_QUERY_PARAM = "channel"
TOKEN_QUERY_PARAM = "ws_token"


@dataclass(frozen=True)
class MappedHeader:
    """One header an integration adds, and the API Gateway source it is mapped from."""

    name: str
    source: str

    @property
    def target(self) -> str:
        return f"integration.request.header.{self.name}"

    @cached_property
    def meta_key(self) -> str:
        """The key under which Django exposes this header in ``request.META`` (read on every
        event: computed once)."""
        return "HTTP_" + self.name.upper().replace("-", "_")


CONNECTION_ID = MappedHeader("X-Ws-Connection-Id", "context.connectionId")
API_ID = MappedHeader("X-Ws-Api-Id", "context.apiId")
STAGE = MappedHeader("X-Ws-Stage", "context.stage")
ROUTE_KEY = MappedHeader("X-Ws-Route-Key", "context.routeKey")
EVENT_TYPE = MappedHeader("X-Ws-Event-Type", "context.eventType")
REQUEST_ID = MappedHeader("X-Ws-Request-Id", "context.requestId")
SOURCE_IP = MappedHeader("X-Ws-Source-Ip", "context.identity.sourceIp")
USER_AGENT = MappedHeader("X-Ws-User-Agent", "context.identity.userAgent")
#: A header API Gateway adds on its own; a fallback for the mapped API id, never trusted alone.
AWS_API_ID_HEADER = "X-Amzn-Apigateway-Api-Id"
AWS_API_ID_META_KEY = "HTTP_X_AMZN_APIGATEWAY_API_ID"

#: The gateway secret is a static value: its source is the quoted secret itself.
GATEWAY_SECRET_HEADER = "X-Ws-Gateway-Secret"

#: Every context-derived header, in the order provisioning writes them.
MAPPED_HEADERS: tuple[MappedHeader, ...] = (
    CONNECTION_ID,
    API_ID,
    STAGE,
    ROUTE_KEY,
    EVENT_TYPE,
    REQUEST_ID,
    SOURCE_IP,
    USER_AGENT,
)

GATEWAY_SECRET_META_KEY = "HTTP_" + GATEWAY_SECRET_HEADER.upper().replace("-", "_")

#: Event types as ``context.eventType`` reports them.
EVENT_TYPES = {CONNECT: "CONNECT", DISCONNECT: "DISCONNECT"}
MESSAGE_EVENT_TYPE = "MESSAGE"


def static_value(value: str) -> str:
    """A static ``RequestParameters`` source: the value in single quotes.

    API Gateway's mapping syntax has no escape for a quote, so a secret must not contain one.
    """
    if "'" in value:
        raise ValueError("A static mapping value cannot contain a single quote.")
    quoted = f"'{value}'"
    if len(quoted) > MAX_MAPPED_VALUE_LENGTH:
        raise ValueError(f"A mapping value is limited to {MAX_MAPPED_VALUE_LENGTH} characters.")
    return quoted


def integration_request_parameters(secret: str | None) -> dict[str, str]:
    """``RequestParameters`` for ``create_integration``: target -> source, WebSocket syntax."""
    params = {header.target: header.source for header in MAPPED_HEADERS}
    if secret:
        params[f"integration.request.header.{GATEWAY_SECRET_HEADER}"] = static_value(secret)
    return params


def route_slug(route_key: str) -> str:
    """The URL slug an integration calls for ``route_key`` (custom keys are used as they are)."""
    return SYSTEM_ROUTE_SLUGS.get(route_key, route_key)


def integration_uri(target_base_endpoint: str, slug: str) -> str:
    """The URL API Gateway calls: the gateway's target base endpoint plus the route slug."""
    return target_base_endpoint.rstrip("/") + "/" + slug


def management_endpoint_url(
    *, api_id: str, region: str, stage: str, custom_domain: str = "", mapping_key: str = ""
) -> str:
    """The Management API base URL: the custom domain with its API mapping path when there is
    one, else the execute-api host with the stage (botocore appends ``/@connections/{id}``)."""
    if custom_domain:
        return (
            f"https://{custom_domain}/{mapping_key}" if mapping_key else f"https://{custom_domain}"
        )
    return f"https://{api_id}.execute-api.{region}.amazonaws.com/{stage}"


def event_type_for(route_key: str) -> str:
    return EVENT_TYPES.get(route_key, MESSAGE_EVENT_TYPE)


def integration_headers(
    *,
    connection_id: str,
    api_id: str,
    route_key: str,
    source_ip: str,
    secret: str | None,
    stage: str = "production",
    request_id: str = "",
    user_agent: str = "",
) -> dict[str, str]:
    """The headers an integration request carries, as API Gateway would set them.

    Used by the local gateway and the test helpers so they cannot drift from provisioning.
    """
    values: Mapping[MappedHeader, str] = {
        CONNECTION_ID: connection_id,
        API_ID: api_id,
        STAGE: stage,
        ROUTE_KEY: route_key,
        EVENT_TYPE: event_type_for(route_key),
        REQUEST_ID: request_id or connection_id,
        SOURCE_IP: source_ip,
        USER_AGENT: user_agent,
    }
    headers = {header.name: value for header, value in values.items()}
    # API Gateway adds these itself (observed in execution logs); X-Forwarded-For is not trusted.
    headers.update(forwarded_headers(api_id=api_id, route_key=route_key, source_ip=source_ip))
    if secret:
        headers[GATEWAY_SECRET_HEADER] = secret
    return headers


#: Client handshake headers never passed to an integration: hop-by-hop headers, the body framing
#: (the integration request has its own), and the ones API Gateway writes itself.
_NOT_FORWARDED = frozenset(
    {
        "host",
        "connection",
        "upgrade",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "content-length",
        "content-type",
        "expect",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-amzn-trace-id",
        AWS_API_ID_HEADER.lower(),
    }
)


def new_trace_id(now: float | None = None) -> str:
    """An X-Ray trace header as API Gateway adds it: ``Root=1-<epoch hex>-<24 hex>``."""
    epoch = int(time.time() if now is None else now)
    return f"Root=1-{epoch:08x}-{secrets.token_hex(12)}"


def forwarded_headers(
    *,
    api_id: str,
    route_key: str,
    source_ip: str,
    client_headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    client_forwarded_for: str = "",
    trace_id: str = "",
    proto: str = "https",
    port: str = "443",
) -> dict[str, str]:
    """The headers API Gateway itself puts on an integration request (before ``RequestParameters``).

    The ONE definition used by the local gateway and by :class:`~.testing.GatewayClient`:

    * on ``$connect`` only, the client's handshake headers (``Origin``, ``Cookie``,
      ``Sec-WebSocket-*``, ``Accept-Language``...; ``client_headers``), without hop-by-hop ones;
      the client's ``User-Agent`` is kept there, other events carry ``AmazonAPIGateway_<apiId>``
      (also on ``$connect`` when the client sent none);
    * on every event ``X-Amzn-Apigateway-Api-Id``, ``X-Forwarded-For`` (what the client sent in
      its handshake, ``client_forwarded_for``, with the TCP source address appended: never
      trustworthy), ``X-Forwarded-Proto``/``-Port`` (``https``/``443`` in AWS) and a fresh
      ``X-Amzn-Trace-Id``.

    Names keep the client's spelling; API Gateway's own headers replace a client's header of the
    same name whatever its case.
    """
    headers: dict[str, str] = {}
    user_agent = ""
    if route_key == CONNECT and client_headers is not None:
        pairs = client_headers.items() if isinstance(client_headers, Mapping) else client_headers
        seen: dict[str, str] = {}  # lower-case name -> spelling used in ``headers``
        for name, value in pairs:
            lower = name.lower()
            if lower in _NOT_FORWARDED:
                continue
            if lower == "user-agent":
                user_agent = value
                continue
            if lower in seen:  # a repeated header is joined, as a proxy folds it
                separator = "; " if lower == "cookie" else ", "
                headers[seen[lower]] += separator + value
            else:
                seen[lower] = name
                headers[name] = value
    headers[AWS_API_ID_HEADER] = api_id
    headers["User-Agent"] = user_agent or f"AmazonAPIGateway_{api_id}"
    client_forwarded_for = client_forwarded_for.strip().strip(",").strip()
    headers["X-Forwarded-For"] = (
        f"{client_forwarded_for}, {source_ip}" if client_forwarded_for else source_ip
    )
    headers["X-Forwarded-Proto"] = proto
    headers["X-Forwarded-Port"] = port
    headers["X-Amzn-Trace-Id"] = trace_id or new_trace_id()
    return headers


def as_meta(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers as Django's test client takes them in ``**extra`` (``HTTP_X_WS_...``)."""
    meta = {}
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        meta[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"] = value
    return meta
