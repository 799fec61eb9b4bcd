"""The package's one settings dict, ``AWS_API_GATEWAY_WEBSOCKETS``, with its documented defaults.

Read values through :data:`ws_settings` (``ws_settings.TOKEN_LIFETIME``); it re-reads Django's
settings when ``override_settings`` changes them, so tests can tune any knob. Type and value
errors are reported by the system checks in :mod:`.checks`, never raised here.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

SETTINGS_NAME = "AWS_API_GATEWAY_WEBSOCKETS"

#: Every knob with its default. ``docs/settings.rst`` documents each one; keep them in step.
DEFAULTS: dict[str, Any] = {
    # Shared secrets that API Gateway sends in a static header on every integration request.
    # The first one is what provisioning writes; all of them are accepted (rotation).
    "GATEWAY_SECRETS": [],
    # Accept events without a gateway secret when none is configured: an explicit opt-in for
    # local experiments (``True``), logged as a warning on every event it lets in. DEBUG does not
    # imply it: a tunnelled development server is reachable by anyone.
    "ALLOW_UNAUTHENTICATED_GATEWAY": False,
    # The pipeline's stages (dotted paths), each overridable on a view like DRF's classes.
    "GATEWAY_AUTHENTICATORS": [
        "django_aws_api_gateway_websockets.authentication.SharedSecretAuthenticator"
    ],
    "THROTTLE_CLASSES": [
        "django_aws_api_gateway_websockets.throttling.ConnectRateThrottle",
        "django_aws_api_gateway_websockets.throttling.UserConnectRateThrottle",
    ],
    "PERMISSION_CLASSES": [],
    # Rate limits key an IPv6 address on this network prefix (a subscriber usually has a /64).
    "IPV6_RATE_LIMIT_PREFIX": 64,
    # The client address of ordinary HTTP requests (the token endpoint): a function of the
    # request, by default REMOTE_ADDR, the X-Forwarded-For entry added by the nearest of
    # TRUSTED_PROXY_COUNT proxies, or the header CLIENT_IP_HEADER set by a trusted proxy.
    "CLIENT_IP_FUNCTION": "django_aws_api_gateway_websockets.client_ip.client_ip",
    "TRUSTED_PROXY_COUNT": 0,
    "CLIENT_IP_HEADER": "",
    # How long a process may use its cached copy of the gateway records (seconds).
    "GATEWAY_CACHE_SECONDS": 5.0,
    # WebSocket tokens: lifetime in seconds.
    "TOKEN_LIFETIME": 60,
    # Token minting: at most TOKEN_MINT_LIMIT per user (per IP for anonymous) per window.
    "TOKEN_MINT_LIMIT": 20,
    "TOKEN_MINT_WINDOW": 60,
    # Connection attempts ($connect) per source IP and per authenticated user per window.
    "CONNECT_LIMIT_PER_IP": 60,
    "CONNECT_LIMIT_PER_USER": 30,
    "CONNECT_WINDOW": 60,
    # Channel names a client may ask for with ?channel=.
    "CHANNEL_NAME_PATTERN": r"^[A-Za-z0-9_.:-]{1,100}$",
    # A session's last_seen_at is written at most once per this many seconds (0: every message).
    "LAST_SEEN_UPDATE_INTERVAL": 60,
    # Cleanup: keep disconnected sessions this long (seconds) before deleting them.
    "DISCONNECTED_SESSION_RETENTION": 24 * 60 * 60,
    # Cleanup: keep used or expired tokens this long (seconds) before deleting them.
    "TOKEN_RETENTION": 60 * 60,
    # Cleanup: keep rate-limit windows this long after they end (seconds).
    "RATE_LIMIT_RETENTION": 60 * 60,
    # Outbound messages: the transport class (dotted path) and its keyword options.
    "TRANSPORT": "django_aws_api_gateway_websockets.transports.aws.ManagementApiTransport",
    "TRANSPORT_OPTIONS": {},
    # Sessions read per database round trip while streaming a broadcast's recipients.
    "SEND_CHUNK_SIZE": 2000,
    # A 410 for a session this young (seconds since $connect) never marks it gone: API Gateway
    # answers 410 until $connect has returned, which takes at most 29 seconds.
    "CONNECT_GRACE_SECONDS": 30,
    # How long a message to a connection that is still opening is retried in the background
    # (seconds); 0 gives up at once (the recipient is reported failed, never gone).
    "PENDING_DELIVERY_TIMEOUT": 5.0,
    # Background broadcasts: the django.tasks backend alias and recipients per task.
    "TASK_BACKEND": "default",
    "TASK_BATCH_SIZE": 5000,
    # Provisioning: an endpoint URL per boto3 service name ("apigatewayv2", "acm", "route53"),
    # e.g. moto or the local gateway's control plane; services not listed go to AWS.
    "AWS_ENDPOINT_URLS": {},
    # The local API Gateway (``manage.py run_local_gateway``), e.g. "http://127.0.0.1:4510": when
    # set, the Management API transport and provisioning's apigatewayv2 client go there instead
    # of AWS, for every ApiGateway record, without editing the records. Empty: AWS.
    "LOCAL_GATEWAY_URL": "",
    # Provisioning: a run that has not written progress for this long (seconds) is presumed dead
    # and its claim on the record may be taken over.
    "PROVISIONING_LOCK_SECONDS": 900,
    # Provisioning: how long to wait for ACM to issue a certificate (seconds), and how often to ask.
    "CERTIFICATE_WAIT_SECONDS": 1800,
    "CERTIFICATE_POLL_SECONDS": 15,
}

#: Keys whose defaults are integers or floats (seconds or counts); all must be >= 0.
NUMERIC_KEYS = (
    "GATEWAY_CACHE_SECONDS",
    "TOKEN_LIFETIME",
    "TOKEN_MINT_LIMIT",
    "TOKEN_MINT_WINDOW",
    "CONNECT_LIMIT_PER_IP",
    "CONNECT_LIMIT_PER_USER",
    "CONNECT_WINDOW",
    "LAST_SEEN_UPDATE_INTERVAL",
    "DISCONNECTED_SESSION_RETENTION",
    "TOKEN_RETENTION",
    "RATE_LIMIT_RETENTION",
    "SEND_CHUNK_SIZE",
    "CONNECT_GRACE_SECONDS",
    "PENDING_DELIVERY_TIMEOUT",
    "TASK_BATCH_SIZE",
    "TRUSTED_PROXY_COUNT",
    "PROVISIONING_LOCK_SECONDS",
    "CERTIFICATE_WAIT_SECONDS",
    "CERTIFICATE_POLL_SECONDS",
)

#: Keys that must be strictly positive (a zero window or lifetime makes no sense).
POSITIVE_KEYS = (
    "TOKEN_LIFETIME",
    "TOKEN_MINT_WINDOW",
    "CONNECT_WINDOW",
    "SEND_CHUNK_SIZE",
    "TASK_BATCH_SIZE",
    "PROVISIONING_LOCK_SECONDS",
    "CERTIFICATE_POLL_SECONDS",
)


class WebSocketSettings:
    """Attribute access to the settings dict, falling back to :data:`DEFAULTS`."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    @property
    def user_settings(self) -> dict[str, Any]:
        value = getattr(settings, SETTINGS_NAME, {})
        return value if isinstance(value, dict) else {}

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Invalid {SETTINGS_NAME} setting: {name!r}")
        if name not in self._cache:
            self._cache[name] = self.user_settings.get(name, DEFAULTS[name])
        return self._cache[name]

    def reload(self) -> None:
        self._cache.clear()

    @property
    def gateway_secrets(self) -> list[str]:
        """The configured secrets, tolerating a single string where a list was meant."""
        secrets = self.GATEWAY_SECRETS
        if isinstance(secrets, str):
            secrets = [secrets]
        return [s for s in secrets if isinstance(s, str) and s]


ws_settings = WebSocketSettings()


@receiver(setting_changed)
def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTINGS_NAME:
        ws_settings.reload()
