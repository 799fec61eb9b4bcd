"""Transports carry Management API calls (post, get, delete a connection) to API Gateway.

Like Django's e-mail backends, the active one is chosen in settings (``TRANSPORT``) and the rest of
the package never knows which it is:

* :class:`~.aws.ManagementApiTransport` (default): the AWS Management API, signed with the standard
  credential chain; fast concurrent fan-out over shared keep-alive connections.
* :class:`~.aws.LocalGatewayTransport`: the same protocol against a local gateway's URL.
* :class:`~.outbox.OutboxTransport`: records messages in memory for tests.

A transport opens a :class:`Batch` for one operation and one payload; the caller submits
connection ids grouped by :class:`Target` and collects one :class:`Result` per id.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from asgiref.sync import sync_to_async
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from ..conf import ws_settings

POST = "POST"
GET = "GET"
DELETE = "DELETE"


class Outcome(enum.Enum):
    OK = "ok"
    GONE = "gone"
    FAILED = "failed"


@dataclass(frozen=True)
class Target:
    """Where a gateway's Management API lives: base URL (with stage or mapping path) and region."""

    endpoint_url: str
    region: str


@dataclass(frozen=True)
class Result:
    connection_id: str
    outcome: Outcome
    #: The error code as botocore would name it (``GoneException``, ``LimitExceededException``,
    #: ``PayloadTooLargeException``, ``ForbiddenException``, ``InternalServerError``, ``500``…)
    #: or the network error; empty on success.
    reason: str = ""
    attempts: int = 1
    #: GetConnection's parsed JSON body.
    data: dict[str, Any] | None = field(default=None, compare=False)


#: Error codes botocore treats as throttling for this service.
THROTTLING_CODES = frozenset({"LimitExceededException", "TooManyRequestsException", "429"})


def classify(status: int, code: str) -> Outcome | None:
    """What an answer means for a recipient; ``None`` means "transient: retry if attempts remain".

    Shared by every transport so that they agree: 2xx ok, 410 gone, throttling and 5xx retried,
    any other error final.
    """
    if 200 <= status < 300:
        return Outcome.OK
    if status == 410 or code == "GoneException":
        return Outcome.GONE
    if status == 429 or code in THROTTLING_CODES or status >= 500:
        return None
    return Outcome.FAILED


class Batch(ABC):
    """One operation (and payload) applied to many connections."""

    @abstractmethod
    def submit(self, target: Target, connection_ids: Sequence[str]) -> None:
        """Queue ids for delivery; may block briefly so memory stays bounded."""

    @abstractmethod
    def completed(self) -> list[Result]:
        """Results that finished since the last call, without waiting."""

    @abstractmethod
    def finish(self) -> list[Result]:
        """Wait for every submitted id; return the results not collected yet."""

    async def asubmit(self, target: Target, connection_ids: Sequence[str]) -> None:
        """:meth:`submit` for async callers; by default in a worker thread, so that a
        transport whose ``submit`` blocks never stalls the caller's event loop."""
        await sync_to_async(self.submit, thread_sensitive=False)(target, connection_ids)

    async def afinish(self) -> list[Result]:
        """:meth:`finish` for async callers (by default in a worker thread)."""
        return await sync_to_async(self.finish, thread_sensitive=False)()


class BaseTransport(ABC):
    @abstractmethod
    def open(self, operation: str, payload: bytes = b"") -> Batch:
        """Start a batch of ``operation`` (POST, GET or DELETE) with ``payload`` (POST only)."""

    def call(
        self, operation: str, target: Target, connection_ids: Sequence[str], payload: bytes = b""
    ) -> list[Result]:
        """Convenience: run one operation for a few ids and return all results."""
        batch = self.open(operation, payload)
        batch.submit(target, connection_ids)
        return batch.completed() + batch.finish()


@lru_cache(maxsize=1)
def _transport(path: str, options_key: str) -> BaseTransport:
    options = dict(ws_settings.TRANSPORT_OPTIONS or {})
    transport: BaseTransport = import_string(path)(**options)
    return transport


#: The default transport, replaced by :data:`LOCAL_TRANSPORT` when ``LOCAL_GATEWAY_URL`` is set.
AWS_TRANSPORT = "django_aws_api_gateway_websockets.transports.aws.ManagementApiTransport"
LOCAL_TRANSPORT = "django_aws_api_gateway_websockets.transports.aws.LocalGatewayTransport"


def transport_path() -> str:
    """``TRANSPORT``; with ``LOCAL_GATEWAY_URL`` set, the AWS transport becomes the local one
    (same protocol, placeholder credentials), so only the setting changes between the two."""
    path: str = ws_settings.TRANSPORT
    if path == AWS_TRANSPORT and ws_settings.LOCAL_GATEWAY_URL:
        return LOCAL_TRANSPORT
    return path


#: The transport for the current settings (cleared when they change).
_active: BaseTransport | None = None


def get_transport() -> BaseTransport:
    """The configured transport (one instance per process, so connections are shared)."""
    global _active
    active = _active
    if active is None:
        options = ws_settings.TRANSPORT_OPTIONS or {}
        active = _active = _transport(transport_path(), repr(sorted(options.items())))
    return active


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    global _active
    if setting == "AWS_API_GATEWAY_WEBSOCKETS":
        _active = None
        _transport.cache_clear()
