"""Channel names: what a client may ask for with ``?channel=`` before any permission hook runs."""

from __future__ import annotations

import re
from functools import lru_cache

from django.utils.translation import gettext as _

from .conf import ws_settings
from .exceptions import BadEvent

#: The model column's length; the pattern may not allow more.
MAX_CHANNEL_NAME_LENGTH = 100


@lru_cache(maxsize=8)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def validate_channel_name(name: str) -> str:
    """Return ``name`` if the configured pattern accepts it; :class:`BadEvent` otherwise."""
    pattern = _compile(ws_settings.CHANNEL_NAME_PATTERN)
    if len(name) > MAX_CHANNEL_NAME_LENGTH or not pattern.fullmatch(name):
        raise BadEvent(_("Invalid channel name."))
    return name
