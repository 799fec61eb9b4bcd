"""System checks: misconfiguration is reported by ``manage.py check``, never found in production.

Ids are stable: ``dagw.E001``… for errors, ``dagw.W001``… for warnings. A check never raises; a
setting of the wrong type is an error message, not a traceback.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from .authentication import is_valid_secret
from .conf import DEFAULTS, NUMERIC_KEYS, POSITIVE_KEYS, SETTINGS_NAME
from .contract import MAX_MAPPED_VALUE_LENGTH

W_NO_SECRET = "dagw.W001"


def _user_settings() -> tuple[dict[str, Any], list[Error]]:
    value = getattr(settings, SETTINGS_NAME, {})
    if not isinstance(value, dict):
        return {}, [Error(f"{SETTINGS_NAME} must be a dict.", id="dagw.E001", obj=SETTINGS_NAME)]
    return value, []


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    user, errors = _user_settings()
    for key in sorted(set(user) - set(DEFAULTS), key=repr):
        errors.append(
            Error(
                f"Unknown key {key!r} in {SETTINGS_NAME}.",
                hint="See the settings reference for valid keys.",
                id="dagw.E002",
            )
        )
    for key in NUMERIC_KEYS:
        if key not in user:
            continue
        value = user[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append(Error(f"{SETTINGS_NAME}[{key!r}] must be a number.", id="dagw.E003"))
        elif value < 0 or (key in POSITIVE_KEYS and value == 0):
            bound = "greater than 0" if key in POSITIVE_KEYS else "0 or more"
            errors.append(Error(f"{SETTINGS_NAME}[{key!r}] must be {bound}.", id="dagw.E004"))
    errors += _check_secrets(user.get("GATEWAY_SECRETS", []))
    if "CHANNEL_NAME_PATTERN" in user:
        pattern = user["CHANNEL_NAME_PATTERN"]
        try:
            if not isinstance(pattern, str):
                raise TypeError
            re.compile(pattern)
        except (TypeError, re.error):
            errors.append(
                Error(
                    f"{SETTINGS_NAME}['CHANNEL_NAME_PATTERN'] must be a valid regular expression.",
                    id="dagw.E006",
                )
            )
    errors += _check_transport(user)
    errors += _check_endpoint_urls(user.get("AWS_ENDPOINT_URLS", {}))
    errors += _check_local_gateway(user)
    allow = user.get("ALLOW_UNAUTHENTICATED_GATEWAY")
    if allow is not None and not isinstance(allow, bool):
        errors.append(
            Error(
                f"{SETTINGS_NAME}['ALLOW_UNAUTHENTICATED_GATEWAY'] must be True or False.",
                id="dagw.E007",
            )
        )
    errors += _check_pipeline(user)
    return errors


#: Settings naming the pipeline's stages: a list of dotted paths (or one callable path).
_CLASS_LISTS = ("GATEWAY_AUTHENTICATORS", "THROTTLE_CLASSES", "PERMISSION_CLASSES")


def _importable(path: Any) -> bool:
    from django.utils.module_loading import import_string

    if not isinstance(path, str):
        return callable(path)
    try:
        import_string(path)
    except ImportError:
        return False
    return True


def _check_pipeline(user: dict[str, Any]) -> list[Error]:
    errors = []
    for key in _CLASS_LISTS:
        if key not in user:
            continue
        value = user[key]
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            errors.append(Error(f"{SETTINGS_NAME}[{key!r}] must be a list.", id="dagw.E016"))
        elif not all(_importable(entry) for entry in value):
            errors.append(
                Error(
                    f"{SETTINGS_NAME}[{key!r}] names a class that cannot be imported.",
                    id="dagw.E017",
                )
            )
    if "CLIENT_IP_FUNCTION" in user and not _importable(user["CLIENT_IP_FUNCTION"]):
        errors.append(
            Error(
                f"{SETTINGS_NAME}['CLIENT_IP_FUNCTION'] must be the dotted path of a function.",
                id="dagw.E017",
            )
        )
    prefix = user.get("IPV6_RATE_LIMIT_PREFIX", 64)
    if isinstance(prefix, bool) or not isinstance(prefix, int) or not 1 <= prefix <= 128:
        errors.append(
            Error(
                f"{SETTINGS_NAME}['IPV6_RATE_LIMIT_PREFIX'] must be a whole number from 1 to 128.",
                id="dagw.E018",
            )
        )
    if not isinstance(user.get("CLIENT_IP_HEADER", ""), str):
        errors.append(
            Error(f"{SETTINGS_NAME}['CLIENT_IP_HEADER'] must be a header name.", id="dagw.E019")
        )
    return errors


def _check_transport(user: dict[str, Any]) -> list[Error]:
    from django.utils.module_loading import import_string

    from .transports import BaseTransport

    errors = []
    if "TRANSPORT" in user:
        path = user["TRANSPORT"]
        try:
            transport = import_string(path) if isinstance(path, str) else None
        except ImportError:
            transport = None
        if not (isinstance(transport, type) and issubclass(transport, BaseTransport)):
            errors.append(
                Error(
                    f"{SETTINGS_NAME}['TRANSPORT'] must be the dotted path of a transport class.",
                    hint="For example 'django_aws_api_gateway_websockets.transports.aws."
                    "ManagementApiTransport'.",
                    id="dagw.E009",
                )
            )
    if not isinstance(user.get("TRANSPORT_OPTIONS", {}), dict):
        errors.append(
            Error(f"{SETTINGS_NAME}['TRANSPORT_OPTIONS'] must be a dict.", id="dagw.E014")
        )
    if not isinstance(user.get("TASK_BACKEND", "default"), str):
        errors.append(
            Error(f"{SETTINGS_NAME}['TASK_BACKEND'] must be a backend alias.", id="dagw.E015")
        )
    return errors


def _check_endpoint_urls(value: Any) -> list[Error]:
    """Each entry maps a boto3 service name to an absolute http(s) URL with a host."""
    from urllib.parse import urlsplit

    name = f"{SETTINGS_NAME}['AWS_ENDPOINT_URLS']"
    if not isinstance(value, dict):
        return [Error(f"{name} must be a dict of service name to URL.", id="dagw.E021")]
    errors = []
    for service, url in value.items():
        parts = urlsplit(url) if isinstance(url, str) else None
        if not (
            isinstance(service, str)
            and parts is not None
            and parts.scheme in ("http", "https")
            and parts.hostname
        ):
            errors.append(
                Error(
                    f"{name}[{service!r}] must be an http:// or https:// URL with a host.",
                    hint='For example {"apigatewayv2": "http://127.0.0.1:4510"}.',
                    id="dagw.E021",
                )
            )
    return errors


_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def _check_local_gateway(user: dict[str, Any]) -> list[Error]:
    """``LOCAL_GATEWAY_URL``: a base URL (the local gateway's), consistent with the other
    endpoint settings so that one place decides where calls go."""
    from urllib.parse import urlsplit

    value = user.get("LOCAL_GATEWAY_URL", "")
    name = f"{SETTINGS_NAME}['LOCAL_GATEWAY_URL']"
    if value == "" or value is None:
        return []
    parts = urlsplit(value) if isinstance(value, str) else None
    if not (
        parts is not None
        and parts.scheme in ("http", "https")
        and parts.hostname
        and not parts.query
        and not parts.fragment
    ):
        return [
            Error(
                f"{name} must be empty or the gateway's http:// URL (no query string).",
                hint="manage.py run_local_gateway prints it, e.g. 'http://127.0.0.1:4510'.",
                id="dagw.E020",
            )
        ]
    errors = []
    urls = user.get("AWS_ENDPOINT_URLS", {})
    other = urls.get("apigatewayv2") if isinstance(urls, dict) else None
    if other and other.rstrip("/") != value.rstrip("/"):
        errors.append(
            Error(
                f"{name} and AWS_ENDPOINT_URLS['apigatewayv2'] name different control planes.",
                hint="Remove the apigatewayv2 entry: LOCAL_GATEWAY_URL sets it.",
                id="dagw.E022",
            )
        )
    options = user.get("TRANSPORT_OPTIONS", {})
    if isinstance(options, dict) and options.get("endpoint_url"):
        errors.append(
            Error(
                f"{name} is set and TRANSPORT_OPTIONS['endpoint_url'] sends every gateway's "
                "messages to one other URL.",
                hint="Remove TRANSPORT_OPTIONS['endpoint_url']: each API has its own URL on "
                "the local gateway.",
                id="dagw.E023",
            )
        )
    return errors


@register(Tags.security, deploy=True)
def check_local_gateway_in_production(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """A deployed site with ``LOCAL_GATEWAY_URL`` sends its messages nowhere useful."""
    user, _ = _user_settings()
    value = user.get("LOCAL_GATEWAY_URL")
    if not value or not isinstance(value, str):
        return []
    return [
        Warning(
            f"{SETTINGS_NAME}['LOCAL_GATEWAY_URL'] is set: messages and provisioning go to the "
            "local gateway, not AWS.",
            hint="Leave it unset in production settings.",
            id="dagw.W020",
        )
    ]


@register()
def check_local_gateway_host(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """The local gateway accepts any signature and listens on loopback by default: a remote
    host here is a shared, unauthenticated gateway."""
    from urllib.parse import urlsplit

    user, _ = _user_settings()
    value = user.get("LOCAL_GATEWAY_URL")
    if not value or not isinstance(value, str):
        return []
    try:
        host = urlsplit(value).hostname
    except ValueError:
        return []  # dagw.E020
    if host is None or host in _LOOPBACK_HOSTS:
        return []
    return [
        Warning(
            f"{SETTINGS_NAME}['LOCAL_GATEWAY_URL'] points at {host}, not this machine: the "
            "local gateway checks no credentials.",
            hint="Use a loopback address, or a gateway only you can reach.",
            id="dagw.W021",
        )
    ]


def _check_secrets(secrets: Any) -> list[Error]:
    if isinstance(secrets, str) or not isinstance(secrets, (list, tuple)):
        return [
            Error(
                f"{SETTINGS_NAME}['GATEWAY_SECRETS'] must be a list of strings.",
                hint="Use a list even for one secret; list a new secret first to rotate.",
                id="dagw.E005",
            )
        ]
    for secret in secrets:
        if not isinstance(secret, str) or not secret:
            return [
                Error(
                    f"{SETTINGS_NAME}['GATEWAY_SECRETS'] must contain non-empty strings.",
                    id="dagw.E005",
                )
            ]
        if not is_valid_secret(secret) or len(secret) + 2 > MAX_MAPPED_VALUE_LENGTH:
            return [
                Error(
                    "A gateway secret must be printable ASCII without surrounding spaces or "
                    "single quotes, and at most 510 characters.",
                    hint="API Gateway stores it as a quoted static mapping value, and WSGI "
                    "servers decode header bytes as latin-1, so any other character never "
                    "matches. Use e.g. secrets.token_urlsafe(32).",
                    id="dagw.E008",
                )
            ]
    return []


# Not deploy-only: a development server reached through a tunnel is as exposed as production.
@register(Tags.security)
def check_gateway_secret(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    user, _errors = _user_settings()
    if user.get("ALLOW_UNAUTHENTICATED_GATEWAY") is True and not user.get("GATEWAY_SECRETS"):
        return [
            Warning(
                "ALLOW_UNAUTHENTICATED_GATEWAY is True and no gateway secret is set: anyone "
                "who can reach the WebSocket view can act as any connection.",
                hint="Only for experiments on a machine nobody else can reach; set "
                f"{SETTINGS_NAME}['GATEWAY_SECRETS'] instead.",
                id="dagw.W013",
            )
        ]
    secrets = user.get("GATEWAY_SECRETS") or []
    if isinstance(secrets, str):
        secrets = [secrets]
    elif not isinstance(secrets, (list, tuple)):
        return []  # check_settings reports the wrong type (dagw.E005)
    if not secrets:
        return [
            Warning(
                "No gateway secret is configured: anyone who knows the API id could forge "
                "WebSocket events.",
                hint=f"Set {SETTINGS_NAME}['GATEWAY_SECRETS'] to a list with a long random "
                "string and re-provision the integrations.",
                id=W_NO_SECRET,
            )
        ]
    if any(isinstance(s, str) and len(s) < 32 for s in secrets):
        return [
            Warning(
                "A gateway secret is shorter than 32 characters.",
                hint="Use e.g. secrets.token_urlsafe(32).",
                id="dagw.W002",
            )
        ]
    return []


@register(Tags.urls)
def check_websocket_urls(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    from .discovery import websocket_views
    from .routing import DEFAULT_HANDLER, RESERVED_NAMES
    from .views import WebSocketView

    messages: list[Error | Warning] = []
    try:
        routed = websocket_views()
    except Exception as exc:
        return [Warning(f"Could not inspect the URLconf: {exc}", id="dagw.W003")]
    seen: set[type] = set()
    for entry in routed:
        if "route" not in entry.converters:
            messages.append(
                Error(
                    f"URL pattern {entry.pattern!r} routes to {entry.view_class.__name__} "
                    "without a 'route' slug.",
                    hint='Use path("ws/<slug:route>", YourView.as_view()).',
                    obj=entry.view_class,
                    id="dagw.E010",
                )
            )
        view = entry.view_class
        if view in seen:
            continue
        seen.add(view)
        if view.dispatch is not WebSocketView.dispatch:
            messages.append(
                Warning(
                    f"{view.__name__} overrides dispatch(); the security pipeline lives there.",
                    hint="Use handler methods, has_channel_permission() or signals instead.",
                    obj=view,
                    id="dagw.W011",
                )
            )
        names = list(getattr(view, "allowed_handlers", ()) or ())
        bad = [
            repr(name)
            for name in names
            if not isinstance(name, str) or name.startswith("_") or name in RESERVED_NAMES
        ]
        if bad:
            messages.append(
                Error(
                    f"{view.__name__}.allowed_handlers lists names clients may never call: "
                    f"{', '.join(sorted(bad))}.",
                    obj=view,
                    id="dagw.E011",
                )
            )
        missing = [
            name
            for name in names
            if isinstance(name, str) and not callable(getattr(view, name, None))
        ]
        if missing:
            messages.append(
                Error(
                    f"{view.__name__}.allowed_handlers names methods that do not exist: "
                    f"{', '.join(sorted(missing))}.",
                    obj=view,
                    id="dagw.E012",
                )
            )
        if not callable(getattr(view, DEFAULT_HANDLER, None)):
            messages.append(
                Warning(
                    f"{view.__name__} has no default() handler: messages that name no allowed "
                    "handler will be refused with 404.",
                    obj=view,
                    id="dagw.W012",
                )
            )
        needs_user = view.permissions_required or view.all_permissions_required
        if needs_user and not view.USE_WS_TOKEN:
            messages.append(
                Error(
                    f"{view.__name__} requires permissions but USE_WS_TOKEN is False, so no "
                    "connection can carry a user.",
                    obj=view,
                    id="dagw.E013",
                )
            )
    return messages


@register(Tags.database)
def check_database_features(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[Warning]:
    """SQLite before 3.35 has no ``RETURNING``: tokens and rate limits then take a slower path
    (a locked read after the write), still atomic; say so rather than surprise anyone."""
    from django.db import connections, router

    from .models import RateLimitWindow, WebSocketToken

    messages = []
    for model in (WebSocketToken, RateLimitWindow):
        alias = router.db_for_write(model)
        if databases is not None and alias not in databases:
            continue
        connection = connections[alias]
        if connection.vendor == "sqlite" and not connection.features.can_return_columns_from_insert:
            messages.append(
                Warning(
                    f"SQLite on database {alias!r} is older than 3.35 and has no RETURNING: "
                    "token and rate-limit checks take two statements instead of one.",
                    hint="Upgrade SQLite (or use PostgreSQL) for the one-statement path.",
                    id="dagw.W014",
                )
            )
            break
    return messages
