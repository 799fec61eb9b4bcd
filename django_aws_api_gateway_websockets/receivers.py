"""Keep WebSocket access in step with the user it belongs to.

A session's user is read once per message; without these receivers a deactivated user's socket
would stay open until API Gateway closes it (up to two hours), and a deleted user's sessions
would have to be found before they could be closed. Sockets are closed after the transaction
commits, so a rolled-back change closes nothing and no AWS call runs inside a transaction.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_save, pre_delete

from .models import WebSocketSession

logger = logging.getLogger("django_aws_api_gateway_websockets.security")


def _close_after_commit(sessions: list[WebSocketSession], using: str, why: str) -> None:
    if not sessions:
        return

    def close() -> None:
        from .sending import close_connections

        report = close_connections(sessions)
        logger.info(
            "Closed %d WebSocket connection(s) of a %s user: %s", len(sessions), why, report
        )

    transaction.on_commit(close, using=using)


def user_deleted(sender: Any, instance: Any, using: str, **kwargs: Any) -> None:
    """The sessions go with the user (``CASCADE``); their sockets are closed too."""
    sessions = list(WebSocketSession.objects.using(using).filter(user=instance, connected=True))
    _close_after_commit(sessions, using, "deleted")


def user_saved(sender: Any, instance: Any, using: str, **kwargs: Any) -> None:
    """A deactivated user's sockets are closed and their sessions marked closed."""
    if getattr(instance, "is_active", True):
        return
    update_fields = kwargs.get("update_fields")
    if update_fields is not None and "is_active" not in update_fields:
        return
    sessions = list(WebSocketSession.objects.using(using).filter(user=instance, connected=True))
    _close_after_commit(sessions, using, "deactivated")


def connect() -> None:
    model = settings.AUTH_USER_MODEL
    pre_delete.connect(user_deleted, sender=model, dispatch_uid="dagw_user_deleted")
    post_save.connect(user_saved, sender=model, dispatch_uid="dagw_user_saved")
