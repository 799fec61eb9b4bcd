"""Who is in a room: told to everyone in it whenever someone arrives or leaves.

The ``connected`` receiver runs inside ``$connect``, before API Gateway has opened the new
socket; the package delivers to that still-opening connection as soon as it opens, so the
newcomer gets the list too.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.dispatch import receiver

from django_aws_api_gateway_websockets import signals
from django_aws_api_gateway_websockets.models import WebSocketSession
from django_aws_api_gateway_websockets.presence import channel_presence


def broadcast_presence(room: str) -> None:
    presence = channel_presence(room)
    names = sorted(
        get_user_model().objects.filter(pk__in=presence.user_ids).values_list("username", flat=True)
    )
    WebSocketSession.objects.filter(channel_name=room, connected=True).send_message(
        {"type": "presence", "room": room, "users": names}
    )


@receiver(signals.connected)
def on_connected(sender: Any, session: WebSocketSession, **kwargs: Any) -> None:
    broadcast_presence(session.channel_name)


@receiver(signals.disconnected)
def on_disconnected(sender: Any, connection_id: str, gateway_id: int, **kwargs: Any) -> None:
    room = (
        WebSocketSession.objects.filter(connection_id=connection_id, gateway_id=gateway_id)
        .values_list("channel_name", flat=True)
        .first()
    )
    if room is not None:
        broadcast_presence(room)
