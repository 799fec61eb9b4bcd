"""More WebSocket views for the functional tests (routed by ``tests/urls_extra.py``)."""

from typing import Any

from django.http import HttpRequest

from django_aws_api_gateway_websockets.exceptions import BadEvent
from django_aws_api_gateway_websockets.routing import websocket_handler
from django_aws_api_gateway_websockets.views import WebSocketView


class InspectView(WebSocketView):
    """Reports what the pipeline set on the view and the request."""

    def default(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        session = self.websocket_session
        return {
            "connection_id": session.connection_id if session else None,
            "session_user_id": session.user_id if session else None,
            "user": request.user.get_username(),
            "authenticated": bool(request.user.is_authenticated),
            "same_user": session is not None and request.user is session.user,
        }

    @websocket_handler
    def raise_bad_event(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        raise BadEvent("x")

    @websocket_handler
    def as_list(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return [1, "two"]

    @websocket_handler
    def as_none(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return None


class MisconfiguredHandlersView(WebSocketView):
    """Lists machinery in ``allowed_handlers`` by mistake: clients must still never reach it."""

    USE_WS_TOKEN = False
    allowed_handlers = ["dispatch", "setup", "_connect", "_message", "as_view", "echo"]

    def default(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return {"handler": "default"}

    def echo(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return {"handler": "echo"}


class PublicInspectView(InspectView):
    USE_WS_TOKEN = False
