"""Parse an integration request from API Gateway into a :class:`GatewayEvent`.

Everything a client controls passes through here first, once a gateway authenticator
(:mod:`.authentication`) has admitted the request; every problem becomes a
:class:`~.exceptions.BadEvent` (400) or :class:`~.exceptions.PayloadTooLarge` (413), never an
unhandled error.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, QueryDict
from django.utils.translation import gettext as _

from . import contract

if TYPE_CHECKING:
    from django.http.request import _ImmutableQueryDict
from .exceptions import BadEvent, PayloadTooLarge

#: API Gateway's ids are 16 characters of base64url; accept any opaque id of that alphabet.
CONNECTION_ID_RE = re.compile(r"[A-Za-z0-9_=-]{1,128}")
API_ID_RE = re.compile(r"[A-Za-z0-9]{1,32}")
#: Deeper JSON than this is refused: re-encoding it (a handler echoing it) would hit Python's
#: recursion limit, and no real message needs it.
MAX_JSON_DEPTH = 100

#: Only these route slugs have a fixed meaning; every other slug is a message route.
CONNECT_SLUG = contract.SYSTEM_ROUTE_SLUGS[contract.CONNECT]
DISCONNECT_SLUG = contract.SYSTEM_ROUTE_SLUGS[contract.DISCONNECT]
DEFAULT_SLUG = contract.SYSTEM_ROUTE_SLUGS[contract.DEFAULT]


@dataclass(frozen=True)
class GatewayEvent:
    """One call from API Gateway, after authentication and validation."""

    route: str
    #: The route key API Gateway selected (``$connect``, ``$default``, a custom key).
    route_key: str
    connection_id: str
    api_id: str
    source_ip: str | None
    user_agent: str
    stage: str
    request_id: str
    query: QueryDict
    raw_body: str
    json: Any = field(default=None)

    @property
    def is_connect(self) -> bool:
        return self.route == CONNECT_SLUG

    @property
    def is_disconnect(self) -> bool:
        return self.route == DISCONNECT_SLUG

    @property
    def is_message(self) -> bool:
        return not (self.is_connect or self.is_disconnect)


def _header(request: HttpRequest, header: contract.MappedHeader) -> str:
    value = request.META.get(header.meta_key, "")
    return value if isinstance(value, str) else ""


def _source_ip(request: HttpRequest) -> str | None:
    """The client's TCP source address as API Gateway mapped it; never X-Forwarded-For."""
    raw = _header(request, contract.SOURCE_IP).strip()
    if not raw:
        return None
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        raise BadEvent(_("Malformed source IP.")) from None
    if getattr(address, "scope_id", None):  # "fe80::1%eth0": never what API Gateway reports
        raise BadEvent(_("Malformed source IP."))
    return str(address)


def _body(request: HttpRequest) -> str:
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BadEvent(_("Malformed Content-Length.")) from None
    if declared > contract.MAX_MESSAGE_BYTES:
        raise PayloadTooLarge(_("Messages are limited to 128 KB."))
    try:
        raw = request.body
    except SuspiciousOperation:
        raise PayloadTooLarge(_("Messages are limited to 128 KB.")) from None
    if len(raw) > contract.MAX_MESSAGE_BYTES:
        raise PayloadTooLarge(_("Messages are limited to 128 KB."))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadEvent(_("Messages must be UTF-8 text.")) from None


def _json(text: str) -> Any:
    """The parsed body, or ``None`` when it is not JSON (the ``default`` handler gets it)."""
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _depth(value) > MAX_JSON_DEPTH:
        raise BadEvent(_("Message nests too deeply."))
    return value


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _route_key(request: HttpRequest, route: str) -> str:
    """The route key API Gateway mapped, checked against the URL slug it called.

    A custom route may legally be keyed ``connect``; without this check its messages would run
    the ``$connect`` pipeline. The event type is checked too: only API Gateway's own ``$connect``
    and ``$disconnect`` events reach those slugs, and no message reaches them.
    """
    route_key = _header(request, contract.ROUTE_KEY)
    event_type = _header(request, contract.EVENT_TYPE)
    if not route_key or not event_type:
        raise BadEvent(_("Missing route key or event type."))
    expected = {CONNECT_SLUG: contract.CONNECT, DISCONNECT_SLUG: contract.DISCONNECT}.get(route)
    if expected is not None:
        if route_key != expected or event_type != contract.event_type_for(expected):
            raise BadEvent(_("The route key does not match the route."))
    elif event_type != contract.MESSAGE_EVENT_TYPE or route_key in contract.EVENT_TYPES:
        raise BadEvent(_("The route key does not match the route."))
    return route_key


def parse_event(request: HttpRequest, route: str) -> GatewayEvent:
    """Parse an authenticated request from API Gateway into its typed event."""
    route_key = _route_key(request, route)
    connection_id = _header(request, contract.CONNECTION_ID)
    if not CONNECTION_ID_RE.fullmatch(connection_id):
        raise BadEvent(_("Missing or malformed connection id."))
    api_id = _header(request, contract.API_ID) or request.META.get(contract.AWS_API_ID_META_KEY, "")
    if not isinstance(api_id, str) or not API_ID_RE.fullmatch(api_id):
        raise BadEvent(_("Missing or malformed API id."))
    source_ip = _source_ip(request)
    raw_body = _body(request)
    try:
        query = request.GET
        len(query)  # QueryDict parses lazily on some paths; force errors to surface here.
    except SuspiciousOperation:
        raise BadEvent(_("Malformed query string.")) from None
    is_message = route not in (CONNECT_SLUG, DISCONNECT_SLUG)
    return GatewayEvent(
        route=route,
        route_key=route_key,
        connection_id=connection_id,
        api_id=api_id,
        source_ip=source_ip,
        user_agent=_header(request, contract.USER_AGENT)[:512],
        stage=_header(request, contract.STAGE)[:128],
        request_id=_header(request, contract.REQUEST_ID)[:128],
        query=query,
        raw_body=raw_body,
        json=_json(raw_body) if is_message else None,
    )


REDACTED = "[redacted]"


def redact_token(request: HttpRequest) -> None:
    """Blank ``?ws_token=`` in the request once it has been read.

    Django's request logger attaches the request to every 4xx/5xx record, and its ``repr`` (what
    JSON log formatters, error reports and APM tools record) holds the full path with the query
    string. The parsed event keeps its own copy of the query.
    """
    raw = request.META.get("QUERY_STRING", "")
    if not isinstance(raw, str) or contract.TOKEN_QUERY_PARAM not in raw:
        return
    try:
        query = QueryDict(raw, mutable=True)
    except SuspiciousOperation:  # unparseable (too many fields): keep none of it
        request.META["QUERY_STRING"] = ""
        request.GET = QueryDict()
        return
    if contract.TOKEN_QUERY_PARAM not in query:
        return
    query.setlist(contract.TOKEN_QUERY_PARAM, [REDACTED])
    request.META["QUERY_STRING"] = query.urlencode(safe="[]")
    query._mutable = False
    request.GET = cast("_ImmutableQueryDict", query)  # immutable again, as Django's own
