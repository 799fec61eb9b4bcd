"""Django permissions on WebSocket views: any of ``permissions_required``, all of
``all_permissions_required``. Checked on ``$connect``, before a session exists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils.translation import gettext as _

from .exceptions import Forbidden, NotAuthenticated


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
