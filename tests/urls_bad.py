"""A URLconf with one mistake per WebSocket view, for the system-check tests."""

from typing import Any

from django.http import HttpRequest
from django.urls import include, path, re_path

from django_aws_api_gateway_websockets.views import WebSocketView


class GoodView(WebSocketView):
    allowed_handlers = ["echo"]

    def default(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return None

    def echo(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return None


class NoSlugView(GoodView):
    """Routed without a ``route`` slug (dagw.E010)."""


class DispatchView(GoodView):
    """Overrides dispatch (dagw.W011)."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return super().dispatch(request, *args, **kwargs)


class ReservedHandlersView(GoodView):
    """Allows machinery (dagw.E011)."""

    allowed_handlers = ["echo", "dispatch", "_connect"]


class MissingHandlersView(GoodView):
    """Allows a handler that does not exist (dagw.E012)."""

    allowed_handlers = ["echo", "nonexistent"]


class NoDefaultView(WebSocketView):
    """Has no default() (dagw.W012)."""


class PermissionsWithoutTokenView(GoodView):
    """Requires permissions but cannot know the user (dagw.E013)."""

    USE_WS_TOKEN = False
    permissions_required = ["auth.view_user"]


class AllPermissionsWithoutTokenView(GoodView):
    USE_WS_TOKEN = False
    all_permissions_required = ["auth.view_user"]


urlpatterns = [
    path("good/<slug:route>", GoodView.as_view()),
    re_path(r"^goodre/(?P<route>[-a-z]+)$", GoodView.as_view()),
    path("nested/<slug:route>/", include([path("x", GoodView.as_view())])),
    path("noslug/", NoSlugView.as_view()),
    path("noslug/<int:pk>/", NoSlugView.as_view()),
    path("dispatch/<slug:route>", DispatchView.as_view()),
    path("reserved/<slug:route>", ReservedHandlersView.as_view()),
    path("missing/<slug:route>", MissingHandlersView.as_view()),
    path("nodefault/<slug:route>", NoDefaultView.as_view()),
    path("perms/<slug:route>", PermissionsWithoutTokenView.as_view()),
    path("allperms/<slug:route>", AllPermissionsWithoutTokenView.as_view()),
]
