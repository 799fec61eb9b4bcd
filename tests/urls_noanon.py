"""A URLconf where no WebSocket view accepts anonymous tokens."""

from django.urls import include, path

from tests import views

urlpatterns = [
    path("websockets/", include("django_aws_api_gateway_websockets.urls")),
    path("ws/<slug:route>", views.ChatView.as_view(), name="chat"),
    path("public/<slug:route>", views.PublicView.as_view(), name="public"),
]
