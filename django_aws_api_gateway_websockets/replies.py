"""Request/reply over a two-way route: a message that carries ``request_id`` gets its answer back
in an envelope naming that id, so a client with several requests in flight can match them.

API Gateway sends a two-way route's integration response to the socket as it is, with nothing
that ties it to the message that caused it. The envelope adds that tie, and only for messages that
ask for it: a message without ``request_id`` gets the handler's return value unchanged.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponseBase, JsonResponse

#: The JSON key a message uses to ask for an envelope, and the envelope's ``type``.
REQUEST_ID_KEY = "request_id"
REPLY_TYPE = "reply"
#: A longer id, or one that is not a string or integer, is ignored (no envelope).
MAX_REQUEST_ID_LENGTH = 64


def request_id_of(data: Any) -> str | int | None:
    """The message's request id, if it carries a usable one."""
    if not isinstance(data, dict):
        return None
    value = data.get(REQUEST_ID_KEY)
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (
        isinstance(value, str) and 0 < len(value) <= MAX_REQUEST_ID_LENGTH
    ):
        return value
    return None


def reply(request_id: str | int, result: Any) -> HttpResponseBase:
    """The handler's return value wrapped for the client; an ``HttpResponse`` goes as it is."""
    if isinstance(result, HttpResponseBase):
        return result
    if isinstance(result, bytes):
        result = result.decode("utf-8", "replace")
    if result is not None and not isinstance(result, (dict, list, str)):
        raise TypeError(
            f"A WebSocket handler must return a dict, list, str, bytes, HttpResponse or None, "
            f"not {type(result).__name__}."
        )
    return JsonResponse(
        {"type": REPLY_TYPE, REQUEST_ID_KEY: request_id, "ok": True, "data": result}
    )


def refusal_reply(request_id: str | int, status: int, reason: str) -> JsonResponse:
    """A refused message's answer: same envelope, ``ok: false``, with the status and reason."""
    response = JsonResponse(
        {
            "type": REPLY_TYPE,
            REQUEST_ID_KEY: request_id,
            "ok": False,
            "status": status,
            "error": reason,
        },
        status=status,
    )
    response["Cache-Control"] = "no-store"
    return response
