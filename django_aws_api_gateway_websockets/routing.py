"""Which handler method a message runs: chosen from the body, limited to an explicit allow-list.

A message names its handler with the JSON key ``handler``, else ``action`` (the key API Gateway's
default route selection expression reads); anything else falls back to ``default``. Only methods
marked with :func:`websocket_handler` or listed in the view's ``allowed_handlers`` can be chosen,
never a name starting with ``_`` or one of the view's own machinery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

HANDLER_KEYS = ("handler", "action")
DEFAULT_HANDLER = "default"
_MARK = "_websocket_handler"

#: Names a client may never select, even if a subclass lists them by mistake.
RESERVED_NAMES = frozenset(
    {
        "dispatch",
        "setup",
        "options",
        "http_method_not_allowed",
        "as_view",
        "post",
        "get",
        "put",
        "patch",
        "delete",
        "head",
        "trace",
        "has_channel_permission",
        "get_allowed_handlers",
    }
)


def websocket_handler(func: F) -> F:
    """Mark a view method as callable by clients (``{"handler": "<name>"}`` or ``"action"``)."""
    setattr(func, _MARK, True)
    return func


def is_selectable_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and bool(name)
        and not name.startswith("_")
        and name not in RESERVED_NAMES
    )


def allowed_handler_names(view_class: type) -> frozenset[str]:
    """The handler names clients may select on ``view_class`` (``default`` always included)."""
    names = set(getattr(view_class, "allowed_handlers", ()) or ())
    for klass in view_class.__mro__:
        for name, value in vars(klass).items():
            if getattr(value, _MARK, False):
                names.add(name)
    names.add(DEFAULT_HANDLER)
    return frozenset(
        name
        for name in names
        if is_selectable_name(name) and callable(getattr(view_class, name, None))
    )


def requested_handler(data: Any) -> str | None:
    """The handler name the message asks for, if it names one."""
    if isinstance(data, dict):
        for key in HANDLER_KEYS:
            value = data.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def choose_handler(view_class: type, allowed: frozenset[str], data: Any) -> str | None:
    """The requested handler if it is allowed, else ``default`` if the view defines one."""
    name = requested_handler(data)
    if name is not None and name in allowed:
        return name
    return DEFAULT_HANDLER if DEFAULT_HANDLER in allowed else None
