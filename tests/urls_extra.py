"""The test URLconf plus the views of ``tests/views_extra.py``."""

from django.urls import path

from tests import views_extra
from tests.urls import urlpatterns as base_urlpatterns

urlpatterns = [
    *base_urlpatterns,
    path("inspect/<slug:route>", views_extra.InspectView.as_view(), name="inspect"),
    path("pubinspect/<slug:route>", views_extra.PublicInspectView.as_view(), name="pubinspect"),
    path("misc/<slug:route>", views_extra.MisconfiguredHandlersView.as_view(), name="misc"),
]
