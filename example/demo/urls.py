from chat import views
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("", views.room, name="room"),
    path("room/<str:room>/", views.room, name="room"),
    path("login/", views.DemoLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    # The token endpoints the JavaScript client calls.
    path("websockets/", include("django_aws_api_gateway_websockets.urls")),
    # What API Gateway calls: the target base endpoint is http(s)://<host>/ws/
    path("ws/<slug:route>", views.ChatSocketView.as_view(), name="chat_socket"),
]
