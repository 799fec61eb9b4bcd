"""Permission classes for WebSocket views, in the style of DRF.

Each class in ``PERMISSION_CLASSES`` (or a view's ``permission_classes``) is asked on ``$connect``,
before a session exists, and, when the view sets ``check_permissions_on_message``, again on every
message, so that a revoked permission stops working at once rather than when the socket closes.
The view's ``permissions_required`` (any of) and ``all_permissions_required`` (all of) are checked
by :class:`RequiredPermissions`, which every view runs after its own classes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .exceptions import Forbidden, NotAuthenticated

if TYPE_CHECKING:
    from .views import WebSocketView


class BasePermission(ABC):
    #: The reason sent with the 403 when this permission refuses.
    message: Any = gettext_lazy("Permission denied.")

    @abstractmethod
    def has_permission(self, request: HttpRequest, view: WebSocketView) -> bool:
        """May ``request.user`` open (``view.event.is_connect``) or use this connection?"""


class IsAuthenticated(BasePermission):
    message = gettext_lazy("Authentication required.")

    def has_permission(self, request: HttpRequest, view: WebSocketView) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active)


class IsStaff(BasePermission):
    message = gettext_lazy("Staff only.")

    def has_permission(self, request: HttpRequest, view: WebSocketView) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.is_staff)


class RequiredPermissions(BasePermission):
    """The view's ``permissions_required`` (any of) and ``all_permissions_required``."""

    def has_permission(self, request: HttpRequest, view: WebSocketView) -> bool:
        check_permissions(request.user, view.permissions_required, view.all_permissions_required)
        return True


def check_permissions(user: Any, any_of: Sequence[str], all_of: Sequence[str]) -> None:
    """Raise :class:`NotAuthenticated` (anonymous) or :class:`Forbidden` (lacking a permission)."""
    if not any_of and not all_of:
        return
    if user is None or not user.is_authenticated or not user.is_active:
        raise NotAuthenticated(_("Authentication required."))
    if any_of and not any(user.has_perm(perm) for perm in any_of):
        raise Forbidden(_("Permission denied."))
    if all_of and not user.has_perms(list(all_of)):
        raise Forbidden(_("Permission denied."))


def enforce(
    permissions: Sequence[BasePermission], request: HttpRequest, view: WebSocketView
) -> None:
    """Refuse with the first permission that says no."""
    for permission in permissions:
        if not permission.has_permission(request, view):
            user = request.user
            if user is None or not user.is_authenticated:
                raise NotAuthenticated(str(permission.message))
            raise Forbidden(str(permission.message))
