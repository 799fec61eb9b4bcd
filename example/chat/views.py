"""The demo's pages and the WebSocket view API Gateway calls."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from django_aws_api_gateway_websockets.exceptions import BadEvent
from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession
from django_aws_api_gateway_websockets.routing import websocket_handler
from django_aws_api_gateway_websockets.views import WebSocketView

from .models import ChatMessage
from .rooms import ROOMS, STAFF_PERMISSION, STAFF_ROOM

DEMO_USERS = ["alice", "bob", "staff"]
MAX_TEXT = 2000


class DemoLoginView(LoginView):
    template_name = "registration/login.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["demo_users"] = get_user_model().objects.filter(username__in=DEMO_USERS)
        return context


@login_required
def room(request: HttpRequest, room: str = "lobby") -> HttpResponse:
    if room not in ROOMS:
        raise Http404("No such room.")
    return render(
        request,
        "chat/room.html",
        {
            "room": room,
            "rooms": ROOMS,
            "gateway": ApiGateway.objects.get(name="demo"),
            "keep_alive_seconds": settings.DEMO_KEEP_ALIVE_SECONDS,
            "max_connection_seconds": settings.DEMO_MAX_CONNECTION_SECONDS,
        },
    )


class ChatSocketView(WebSocketView):
    """``$connect``: signed-in users only (a token from the page); the staff room needs a
    permission. Messages: ``chat`` broadcasts, ``history`` answers the sender only."""

    def has_channel_permission(self, request: HttpRequest, channel_name: str) -> bool:
        if channel_name not in ROOMS:
            return False
        if channel_name == STAFF_ROOM:
            return request.user.has_perm(STAFF_PERMISSION)
        return True

    @websocket_handler
    def chat(self, request: HttpRequest, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Save the line and send it to everyone in the room (the sender included)."""
        text = (self.message or {}).get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            raise BadEvent(f"text must be 1 to {MAX_TEXT} characters.")
        room = self.websocket_session.channel_name
        line = ChatMessage.objects.create(room=room, user=request.user, text=text.strip())
        report = WebSocketSession.objects.filter(channel_name=room).send_message(line.as_message())
        return {"id": line.pk, "delivered": len(report.sent) + len(report.pending)}

    @websocket_handler
    def history(self, request: HttpRequest, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        """The room's last 50 lines, to the sender only (the reply of a two-way route)."""
        room = self.websocket_session.channel_name
        lines = ChatMessage.objects.filter(room=room).select_related("user").order_by("-pk")[:50]
        return [line.as_message() for line in reversed(lines)]

    @websocket_handler
    def whoami(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        """Answer with a message to this connection only, through the Management API."""
        session = self.websocket_session
        text = f"You are {request.user.get_username()} in #{session.channel_name}."
        session.send_message({"type": "notice", "text": text})

    def default(self, request: HttpRequest, *args: Any, **kwargs: Any) -> dict[str, str]:
        return {"type": "notice", "text": "Unknown action."}
