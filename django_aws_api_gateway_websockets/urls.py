"""Include with ``path("websockets/", include("django_aws_api_gateway_websockets.urls"))``."""

from django.urls import path

from .views import WebSocketTokenStatusView, WebSocketTokenView

app_name = "django_aws_api_gateway_websockets"

urlpatterns = [
    path("token/", WebSocketTokenView.as_view(), name="token"),
    path("token/status/", WebSocketTokenStatusView.as_view(), name="token_status"),
]
