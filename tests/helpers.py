"""Small helpers shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.dispatch import Signal
from django.test import override_settings


def ws_settings(**overrides: object) -> override_settings:
    """``override_settings`` for some keys of the package's settings dict, keeping the rest."""
    return override_settings(
        AWS_API_GATEWAY_WEBSOCKETS={**settings.AWS_API_GATEWAY_WEBSOCKETS, **overrides}
    )


@contextmanager
def receiver(signal: Signal) -> Iterator[list[dict]]:
    """Collect the keyword arguments of every ``signal`` sent inside the block."""
    calls: list[dict] = []

    def record(**kwargs: object) -> None:
        calls.append(kwargs)

    signal.connect(record, weak=False)
    try:
        yield calls
    finally:
        signal.disconnect(record)
