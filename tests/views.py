"""WebSocket views the tests route to."""

from typing import Any

from django.http import HttpRequest

from django_aws_api_gateway_websockets.routing import websocket_handler
from django_aws_api_gateway_websockets.views import WebSocketView


class ChatView(WebSocketView):
    allowed_handlers = ["echo"]

    def default(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return {"handler": "default", "user": request.user.get_username()}

    def echo(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return {"handler": "echo", "data": self.message}

    @websocket_handler
    def whoami(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return request.user.get_username() or "anonymous"

    def secret_method(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return {"handler": "secret_method"}

    def has_channel_permission(self, request: HttpRequest, channel_name: str) -> bool:
        if channel_name.startswith("staff-"):
            return bool(request.user.is_staff)
        return True


class PublicView(WebSocketView):
    USE_WS_TOKEN = False

    def default(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return None


class AnonymousTokenView(WebSocketView):
    ALLOW_ANONYMOUS = True

    def default(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return "ok"


class AnyPermissionView(WebSocketView):
    permissions_required = ["auth.view_user", "auth.change_user"]

    def default(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return None


class AllPermissionsView(WebSocketView):
    all_permissions_required = ["auth.view_user", "auth.change_user"]

    def default(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return None
