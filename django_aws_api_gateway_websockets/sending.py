"""Push messages to connections through the API Gateway Management API (``PostToConnection``).

The data is serialised once, checked against the 128 KB limit before any request, and posted to
each recipient with a shared boto3 client per endpoint. Connections that AWS reports gone (410)
are marked disconnected in one UPDATE. The result is a :class:`DeliveryReport`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.utils import timezone

from . import contract
from .models import ApiGateway, WebSocketSession

MAX_WORKERS = 10


class MessageTooLarge(ValueError):
    def __init__(self, size: int) -> None:
        super().__init__(
            f"The message is {size} bytes; API Gateway accepts at most "
            f"{contract.MAX_MESSAGE_BYTES} bytes."
        )
        self.size = size


@dataclass
class DeliveryReport:
    sent: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        return {"sent": len(self.sent), "gone": len(self.gone), "failed": len(self.failed)}


def encode(data: Any) -> bytes:
    """``data`` as the bytes of one WebSocket message (JSON unless it is already text)."""
    if isinstance(data, bytes):
        payload = data
    elif isinstance(data, str):
        payload = data.encode("utf-8")
    else:
        payload = json.dumps(data, cls=DjangoJSONEncoder, separators=(",", ":")).encode("utf-8")
    if len(payload) > contract.MAX_MESSAGE_BYTES:
        raise MessageTooLarge(len(payload))
    return payload


def management_endpoint(gateway: ApiGateway) -> str:
    """The Management API endpoint: custom domain with its mapping, else execute-api + stage."""
    if gateway.custom_domain_name:
        path = f"/{gateway.api_mapping_key}" if gateway.api_mapping_key else ""
        return f"https://{gateway.custom_domain_name}{path}"
    return f"https://{gateway.api_id}.execute-api.{gateway.region}.amazonaws.com/{gateway.stage}"


_clients: dict[tuple[str, str], Any] = {}
_clients_lock = threading.Lock()


def management_client(gateway: ApiGateway) -> Any:
    key = (management_endpoint(gateway), gateway.region)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = boto3.client(
                "apigatewaymanagementapi",
                endpoint_url=key[0],
                region_name=key[1],
                config=Config(max_pool_connections=MAX_WORKERS),
            )
        return _clients[key]


def send_to_sessions(
    sessions: QuerySet[WebSocketSession] | Iterable[WebSocketSession], data: Any
) -> DeliveryReport:
    payload = encode(data)
    if isinstance(sessions, QuerySet):
        rows = list(sessions.filter(connected=True).values_list("connection_id", "gateway_id"))
    else:
        rows = [(s.connection_id, s.gateway_id) for s in sessions if s.connected]
    gateways = ApiGateway.objects.in_bulk({gateway_id for _cid, gateway_id in rows})
    report = DeliveryReport()

    def post(row: tuple[str, int]) -> None:
        connection_id, gateway_id = row
        try:
            management_client(gateways[gateway_id]).post_to_connection(
                ConnectionId=connection_id, Data=payload
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "GoneException":
                report.gone.append(connection_id)
            else:
                report.failed[connection_id] = code or "ClientError"
        except BotoCoreError as exc:
            report.failed[connection_id] = type(exc).__name__
        else:
            report.sent.append(connection_id)

    with ThreadPoolExecutor(max_workers=MAX_WORKERS) as pool:
        list(pool.map(post, rows))
    if report.gone:
        WebSocketSession.objects.filter(connection_id__in=report.gone).update(
            connected=False, disconnected_at=timezone.now()
        )
    return report
