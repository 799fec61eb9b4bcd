"""Find the WebSocket views in the URLconf: for the system checks and the token endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.urls import URLPattern, URLResolver, get_resolver


@dataclass(frozen=True)
class RoutedView:
    pattern: str
    view_class: type[Any]
    converters: frozenset[str]


def _walk(resolver: URLResolver, prefix: str, converters: frozenset[str]) -> Iterator[RoutedView]:
    for entry in resolver.url_patterns:
        names = converters | frozenset(getattr(entry.pattern, "converters", {}) or {})
        text = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _walk(entry, text, names)
        elif isinstance(entry, URLPattern):
            view_class = getattr(entry.callback, "view_class", None)
            if view_class is not None:
                yield RoutedView(text, view_class, names | _regex_groups(entry))


def _regex_groups(entry: URLPattern) -> frozenset[str]:
    regex = getattr(entry.pattern, "regex", None)
    return frozenset(regex.groupindex) if regex is not None else frozenset()


def websocket_views(urlconf: Any = None) -> list[RoutedView]:
    """Every URL pattern whose view is a :class:`~.views.WebSocketView` subclass."""
    from .views import WebSocketView

    return [
        routed
        for routed in _walk(get_resolver(urlconf), "", frozenset())
        if issubclass(routed.view_class, WebSocketView)
    ]


@lru_cache(maxsize=1)
def anonymous_tokens_allowed() -> bool:
    """Whether any routed view accepts tokens minted for anonymous visitors."""
    return any(
        routed.view_class.USE_WS_TOKEN and routed.view_class.ALLOW_ANONYMOUS
        for routed in websocket_views()
    )


@receiver(setting_changed)
def _clear(*, setting: str, **kwargs: Any) -> None:
    if setting == "ROOT_URLCONF":
        anonymous_tokens_allowed.cache_clear()
