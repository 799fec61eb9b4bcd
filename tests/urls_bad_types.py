"""A URLconf whose view lists handler names of the wrong type (the checks must not raise)."""

from typing import Any

from django.http import HttpRequest
from django.urls import path

from django_aws_api_gateway_websockets.views import WebSocketView


class WrongTypeHandlersView(WebSocketView):
    allowed_handlers = [None, 5]  # type: ignore[list-item]

    def default(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return None


urlpatterns = [path("wrong/<slug:route>", WrongTypeHandlersView.as_view())]
