"""Typed refusals: raised where a problem is detected, turned into a response in one place.

Each refusal carries its HTTP status and a short, translatable reason that is safe to show to
anyone (no settings, no internal detail). :meth:`WebSocketRefusal.as_response` is the only code
that turns them into responses; the views call it from a single ``except`` clause.
"""

from __future__ import annotations

from django.http import JsonResponse
from django.utils.translation import gettext_lazy as _


class WebSocketRefusal(Exception):
    """Base class: an event or request that the package refuses to process."""

    status_code = 400
    default_reason = _("Bad request.")

    def __init__(self, reason: str | None = None) -> None:
        self.reason = str(reason if reason is not None else self.default_reason)
        super().__init__(self.reason)

    def as_response(self) -> JsonResponse:
        response = JsonResponse({"error": self.reason}, status=self.status_code)
        response["Cache-Control"] = "no-store"
        return response


class BadEvent(WebSocketRefusal):
    """Malformed input: headers, connection id, body or query string (400)."""

    status_code = 400
    default_reason = _("Malformed request.")


class NotAuthenticated(WebSocketRefusal):
    """No valid credentials: a missing, used or expired token, an anonymous user (401)."""

    status_code = 401
    default_reason = _("Authentication required.")


class Forbidden(WebSocketRefusal):
    """Credentials are valid but not sufficient, or the caller is not our API Gateway (403)."""

    status_code = 403
    default_reason = _("Forbidden.")


class UnknownRoute(WebSocketRefusal):
    """The route or handler does not exist for this gateway or view (404)."""

    status_code = 404
    default_reason = _("Unknown route.")


class PayloadTooLarge(WebSocketRefusal):
    """A body over API Gateway's 128 KB message limit (413)."""

    status_code = 413
    default_reason = _("Message too large.")


class RateLimited(WebSocketRefusal):
    """Too many attempts in the current window (429)."""

    status_code = 429
    default_reason = _("Too many requests.")

    def __init__(self, reason: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after

    def as_response(self) -> JsonResponse:
        response = super().as_response()
        if self.retry_after:
            response["Retry-After"] = str(self.retry_after)
        return response
