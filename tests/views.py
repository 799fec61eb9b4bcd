"""WebSocket views the tests route to."""

from typing import Any

from django.http import HttpRequest

from django_aws_api_gateway_websockets.authentication import BaseGatewayAuthenticator
from django_aws_api_gateway_websockets.permissions import BasePermission, IsAuthenticated
from django_aws_api_gateway_websockets.routing import websocket_handler
from django_aws_api_gateway_websockets.throttling import BaseThrottle
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


# The pipeline's stages, composed on views (no super() anywhere) -----------------------------------


class HeaderAuthenticator(BaseGatewayAuthenticator):
    """Admits requests carrying ``X-Test-Gateway: yes``; abstains otherwise."""

    def authenticate(self, request: HttpRequest) -> bool:
        return request.META.get("HTTP_X_TEST_GATEWAY") == "yes"


class ChannelThrottle(BaseThrottle):
    """Two connections per minute into any one channel."""

    def get_key(self, view: WebSocketView, user_id: Any) -> str | None:
        channel = view.event.query.get("channel") or view.gateway.default_channel_name
        return f"connect:channel:{channel}"

    def get_rate(self) -> tuple[int, int]:
        return 2, 60


class NotOnBlocklist(BasePermission):
    message = "You are blocked."

    def has_permission(self, request: HttpRequest, view: WebSocketView) -> bool:
        return not request.user.get_username().startswith("blocked")


class CustomPipelineView(WebSocketView):
    gateway_authenticators = [
        HeaderAuthenticator,
        "django_aws_api_gateway_websockets.authentication.SharedSecretAuthenticator",
    ]
    throttle_classes = [
        ChannelThrottle,
        "django_aws_api_gateway_websockets.throttling.ConnectRateThrottle",
    ]
    permission_classes = [IsAuthenticated, NotOnBlocklist]

    def default(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return "ok"


class StaffOnMessageView(WebSocketView):
    """Checks ``auth.view_user`` on $connect and again on every message."""

    permissions_required = ["auth.view_user"]
    check_permissions_on_message = True

    def default(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return "ok"


class AudienceView(WebSocketView):
    token_audience = "dashboard"

    def default(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return "ok"
