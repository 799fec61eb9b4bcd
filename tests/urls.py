from django.contrib import admin
from django.urls import include, path

from tests import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("websockets/", include("django_aws_api_gateway_websockets.urls")),
    path("ws/<slug:route>", views.ChatView.as_view(), name="chat"),
    path("public/<slug:route>", views.PublicView.as_view(), name="public"),
    path("anon/<slug:route>", views.AnonymousTokenView.as_view(), name="anon"),
    path("anyperm/<slug:route>", views.AnyPermissionView.as_view(), name="anyperm"),
    path("allperm/<slug:route>", views.AllPermissionsView.as_view(), name="allperm"),
    path("custom/<slug:route>", views.CustomPipelineView.as_view(), name="custom"),
    path("permmsg/<slug:route>", views.StaffOnMessageView.as_view(), name="permmsg"),
    path("audience/<slug:route>", views.AudienceView.as_view(), name="audience"),
]
