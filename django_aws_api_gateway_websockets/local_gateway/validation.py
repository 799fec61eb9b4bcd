"""What AWS refuses for WebSocket APIs, beyond what botocore's model already checks.

The service model validates types, enums and lengths for every protocol; these rules are the ones
API Gateway applies to ``WEBSOCKET`` APIs (reference: "Provisioning with boto3" and "Request
parameter mapping"), plus what the local gateway cannot serve (Lambda integrations, VPC links,
authorizers), refused with a clear message instead of being accepted and silently ignored.
Every function raises :class:`~.store.BadRequest`. Imports nothing from Django.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from .store import BadRequest, Integration, Route, RouteResponse, Stage

CONNECT, DISCONNECT, DEFAULT = "$connect", "$disconnect", "$default"
SYSTEM_ROUTE_KEYS = (CONNECT, DISCONNECT, DEFAULT)
MIN_TIMEOUT_MILLIS = 50
#: WebSocket APIs allow 29 seconds (HTTP APIs 30): the model's bound is the looser one.
MAX_TIMEOUT_MILLIS = 29_000
LOCAL_ONLY = "not supported by the local gateway"

ROUTE_SELECTION = re.compile(
    r"^(\$request\.body(\.[A-Za-z0-9_$-]+)+|\$\{request\.body(\.[A-Za-z0-9_$-]+)+\})$"
)
API_KEY_SELECTIONS = ("$request.header.x-api-key", "$context.authorizer.usageIdentifierKey")
HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"}
STAGE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
STAGE_VARIABLE_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
STAGE_VARIABLE_VALUE = re.compile(r"^[A-Za-z0-9\-._~:/?#&=,]{0,2048}$")
STAGE_VARIABLE_REF = re.compile(r"\$\{stageVariables\.([A-Za-z0-9_]+)\}")

_NAME = r"[A-Za-z0-9!#$%&*+^_`|~.-]+"
INTEGRATION_TARGET = re.compile(rf"^integration\.request\.(header|querystring|path)\.{_NAME}$")
ROUTE_PARAMETER = re.compile(rf"^route\.request\.(header|querystring)\.{_NAME}$")
#: Context variables a WebSocket mapping may read (``$context`` reference for WebSocket APIs).
CONTEXT_VARIABLES = {
    "apiId",
    "connectedAt",
    "connectionId",
    "domainName",
    "eventType",
    "extendedRequestId",
    "messageDirection",
    "messageId",
    "requestId",
    "requestTime",
    "requestTimeEpoch",
    "routeKey",
    "stage",
    "status",
}
CONTEXT_GROUPS = {"identity", "authorizer", "error"}
_SOURCES = (
    re.compile(
        rf"^route\.request\.(header|querystring|multivalueheader|multivaluequerystring)\.{_NAME}$"
    ),
    re.compile(r"^route\.request\.body(\.[^\s.][^\s]*)?$"),
    re.compile(r"^stageVariables\.[A-Za-z0-9_]+$"),
    re.compile(r"^'[^']*'$"),
)
#: HTTP APIs' parameter mapping syntax, which WebSocket APIs refuse.
HTTP_API_SYNTAX = re.compile(r"^(append|overwrite|remove):|^\$(request|context|stageVariables)\.")


def _refuse(message: str) -> BadRequest:
    return BadRequest(message)


def api(params: dict[str, Any], *, creating: bool) -> None:
    http_only = [
        n for n in ("RouteKey", "Target", "CredentialsArn", "CorsConfiguration") if n in params
    ]
    if http_only:
        raise _refuse(f"{', '.join(http_only)}: only HTTP APIs support quick create and CORS.")
    if creating:
        if params.get("ProtocolType") != "WEBSOCKET":
            raise _refuse(
                f"ProtocolType {params.get('ProtocolType')}: only WEBSOCKET APIs are {LOCAL_ONLY}."
            )
        if not params.get("RouteSelectionExpression"):
            raise _refuse("RouteSelectionExpression is required for WEBSOCKET APIs.")
    expression = params.get("RouteSelectionExpression")
    if expression is not None and not ROUTE_SELECTION.match(expression):
        raise _refuse(
            f"Invalid RouteSelectionExpression {expression!r}: a WebSocket API selects routes "
            "with $request.body.<path> (or ${request.body.<path>})."
        )
    key_selection = params.get("ApiKeySelectionExpression")
    if key_selection is not None and key_selection not in API_KEY_SELECTIONS:
        raise _refuse(f"ApiKeySelectionExpression must be one of {', '.join(API_KEY_SELECTIONS)}.")


def _check_uri(uri: str) -> None:
    plain = STAGE_VARIABLE_REF.sub("x", uri)
    parts = urlsplit(plain)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _refuse(
            f"Invalid IntegrationUri {uri!r}: an HTTP integration needs an absolute "
            "http:// or https:// URL."
        )
    if "${" in plain:
        raise _refuse(
            f"Invalid IntegrationUri {uri!r}: only ${{stageVariables.NAME}} may be substituted."
        )


def mapping_source(source: str) -> str | None:
    """Why ``source`` is not a WebSocket mapping source, or ``None`` when it is one."""
    if HTTP_API_SYNTAX.match(source):
        return "that is HTTP API syntax"
    if source.startswith("context."):
        path = source[len("context.") :].split(".")
        if path[0] in CONTEXT_VARIABLES and len(path) == 1:
            return None
        if path[0] in CONTEXT_GROUPS and len(path) == 2 and path[1]:
            return None
        return "unknown context variable"
    if any(pattern.match(source) for pattern in _SOURCES):
        return None
    return "not a mapping expression"


def request_parameters(mapping: dict[str, str]) -> None:
    for target, source in mapping.items():
        if HTTP_API_SYNTAX.match(target):
            raise _refuse(
                f"Invalid mapping expression specified: {target}: HTTP API syntax; WebSocket "
                "APIs map integration.request.header.NAME (or querystring, path)."
            )
        if not INTEGRATION_TARGET.match(target):
            raise _refuse(f"Invalid mapping expression specified: {target}")
        problem = mapping_source(source)
        if problem:
            raise _refuse(f"Invalid mapping expression specified: {source} ({problem}).")


def integration(item: Integration) -> None:
    kind = item.integration_type
    if kind in ("AWS", "AWS_PROXY"):
        raise _refuse(
            f"IntegrationType {kind} (Lambda and AWS services) is {LOCAL_ONLY}; "
            "use HTTP_PROXY or HTTP."
        )
    for name in ("IntegrationSubtype", "TlsConfig", "ResponseParameters"):
        if name in item.extra:
            raise _refuse(f"{name} is only supported for HTTP APIs.")
    if item.connection_type == "VPC_LINK" or "ConnectionId" in item.extra:
        raise _refuse(f"VPC links are {LOCAL_ONLY}.")
    version = item.extra.get("PayloadFormatVersion")
    if version is not None and version != "1.0":
        raise _refuse("PayloadFormatVersion must be 1.0 for WebSocket APIs.")
    if not MIN_TIMEOUT_MILLIS <= item.timeout_in_millis <= MAX_TIMEOUT_MILLIS:
        raise _refuse(
            f"TimeoutInMillis must be between {MIN_TIMEOUT_MILLIS} and "
            f"{MAX_TIMEOUT_MILLIS} for WebSocket APIs."
        )
    if kind in ("HTTP", "HTTP_PROXY"):
        if not item.integration_uri:
            raise _refuse(f"IntegrationUri is required for {kind} integrations.")
        _check_uri(item.integration_uri)
        if not item.integration_method:
            raise _refuse(f"IntegrationMethod is required for {kind} integrations.")
        if item.integration_method.upper() not in HTTP_METHODS:
            raise _refuse(f"Invalid IntegrationMethod {item.integration_method!r}.")
    elif item.integration_uri:
        raise _refuse("A MOCK integration has no IntegrationUri.")
    request_parameters(item.request_parameters)


def route(item: Route) -> None:
    key = item.route_key
    if key.startswith("$") and key not in SYSTEM_ROUTE_KEYS:
        raise _refuse(
            f"Route key {key} is reserved: keys starting with $ are "
            f"{', '.join(SYSTEM_ROUTE_KEYS)} only."
        )
    if item.target and not re.match(r"^integrations/[A-Za-z0-9]+$", item.target):
        raise _refuse(f"Invalid Target {item.target!r}: use integrations/{{IntegrationId}}.")
    auth = item.authorization_type or "NONE"
    if auth == "JWT" or "AuthorizationScopes" in item.extra:
        raise _refuse("JWT authorization and AuthorizationScopes are only for HTTP APIs.")
    if auth != "NONE" and key != CONNECT:
        raise _refuse("Currently, authorization is only supported for the $connect route.")
    if auth != "NONE":
        raise _refuse(f"AuthorizationType {auth} is {LOCAL_ONLY} (no authorizers run locally).")
    if item.route_response_selection_expression not in ("", DEFAULT):
        raise _refuse("RouteResponseSelectionExpression must be $default for WebSocket routes.")
    for name in item.request_parameters:
        if not ROUTE_PARAMETER.match(name):
            raise _refuse(
                f"Invalid route request parameter {name}: use "
                "route.request.header.NAME or route.request.querystring.NAME."
            )
        if key != CONNECT:
            raise _refuse("Route request parameters are only supported on the $connect route.")


def route_response(item: RouteResponse) -> None:
    if item.route_response_key != DEFAULT:
        raise _refuse(
            "RouteResponseKey must be $default: it is the only route response key "
            "WebSocket APIs support."
        )


def stage(item: Stage) -> None:
    if item.stage_name == DEFAULT:
        raise _refuse("The $default stage is only for HTTP APIs.")
    if not STAGE_NAME.match(item.stage_name):
        raise _refuse("Stage names use letters, digits, '-' and '_' (at most 128).")
    for name, value in item.stage_variables.items():
        if not STAGE_VARIABLE_NAME.match(name):
            raise _refuse(f"Invalid stage variable name {name!r}: letters, digits and '_'.")
        if not STAGE_VARIABLE_VALUE.match(value):
            raise _refuse(
                f"Invalid value for stage variable {name!r}: letters, digits and "
                "-._~:/?#&=, (at most 2048)."
            )
