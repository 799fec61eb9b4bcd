"""URLs of the local gateway benchmark's Django child: one trivial view."""

from benchmarks.local_gateway import _urlpatterns

urlpatterns = _urlpatterns()
