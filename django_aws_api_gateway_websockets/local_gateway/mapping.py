"""Evaluating API Gateway's WebSocket expressions: route selection and ``RequestParameters``.

Both read the same sources (reference §1.3, §2.3): ``$request.body.<path>`` for route selection;
``context.*``, ``stageVariables.*``, ``route.request.header|querystring.*`` (``$connect`` only),
``route.request.body.<path>`` and static ``'values'`` for request parameters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

_MISSING: Any = object()
_PATH_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]|\['([^']*)'\]")
#: ``${request.body.a.b}`` or ``$request.body.a.b`` inside a route selection expression.
_SELECTION_VARIABLE = re.compile(
    r"\$\{request\.body\.([^}]*)\}|\$request\.body\.([A-Za-z0-9_.\[\]'-]+)"
)
_STAGE_VARIABLE = re.compile(r"\$\{stageVariables\.([A-Za-z0-9_.:/?#&=,-]+)\}")


def parse_json(text: str) -> Any:
    """The message as JSON, or ``_MISSING`` when it is not JSON."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _MISSING


def json_path(document: Any, path: str) -> Any:
    """``a.b[0]`` (a leading ``$.`` is allowed) in ``document``; ``_MISSING`` when absent."""
    path = path.strip()
    if path.startswith("$"):
        path = path[1:]
    position = 0
    value = document
    while position < len(path):
        match = _PATH_TOKEN.match(path, position)
        if match is None or match.end() == position:
            return _MISSING
        position = match.end()
        name, index, quoted = match.groups()
        key = quoted if quoted is not None else name
        if index is not None:
            if not isinstance(value, list) or int(index) >= len(value):
                return _MISSING
            value = value[int(index)]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            return _MISSING
    return value


def stringify(value: Any) -> str:
    """A JSON value as API Gateway (Java) turns it into text: ``[a, b]``, ``{k=v}``, ``true``."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(stringify(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={stringify(v)}" for k, v in value.items()) + "}"
    return str(value)


def select_route(expression: str, body: str, route_keys: Iterable[str]) -> str | None:
    """The route key a message selects, ``"$default"`` when nothing matches (if it exists), else
    ``None`` (the caller answers with a ``Forbidden`` error frame)."""
    keys = route_keys if isinstance(route_keys, (set, frozenset, dict)) else set(route_keys)
    document = parse_json(body)
    if document is not _MISSING:

        def variable(match: re.Match[str]) -> str:
            value = json_path(document, match.group(1) or match.group(2) or "")
            return "" if value is _MISSING else stringify(value)

        selected = _SELECTION_VARIABLE.sub(variable, expression)
        if selected in keys and not (selected.startswith("$") and selected != "$default"):
            return selected
    return "$default" if "$default" in keys else None


def substitute_stage_variables(text: str, stage_variables: Mapping[str, str]) -> str:
    """``${stageVariables.name}`` replaced by its value (an undefined variable gives ``""``)."""
    if "${" not in text:
        return text
    return _STAGE_VARIABLE.sub(lambda m: stage_variables.get(m.group(1), ""), text)


@dataclass
class MappingSources:
    """What one integration request can read from."""

    context: Mapping[str, str]
    stage_variables: Mapping[str, str]
    #: Client handshake headers and query string: only on ``$connect``, empty otherwise.
    headers: list[tuple[str, str]] = field(default_factory=list)
    query: list[tuple[str, str]] = field(default_factory=list)
    body: str = ""
    _document: Any = field(default=None, init=False, repr=False)

    def document(self) -> Any:
        if self._document is None:
            self._document = parse_json(self.body) if self.body else _MISSING
        return self._document


def _all(pairs: list[tuple[str, str]], name: str, case_insensitive: bool) -> list[str]:
    if case_insensitive:
        name = name.lower()
        return [v for k, v in pairs if k.lower() == name]
    return [v for k, v in pairs if k == name]


def resolve(source: str, sources: MappingSources) -> str | None:
    """One mapping source's value, ``None`` when it has none (the target is then left out)."""
    source = source.strip()
    if len(source) >= 2 and source[0] == "'" and source[-1] == "'":
        return source[1:-1]
    if source.startswith("context."):
        return sources.context.get(source[len("context.") :])
    if source.startswith("stageVariables."):
        return sources.stage_variables.get(source[len("stageVariables.") :])
    prefix, _, name = source.partition(".request.")
    if prefix != "route":
        return None
    kind, _, rest = name.partition(".")
    if kind == "body":
        document = sources.document()
        if document is _MISSING:
            return None
        value = json_path(document, rest)
        return None if value is _MISSING else stringify(value)
    if kind in ("header", "multivalueheader"):
        values = _all(sources.headers, rest, case_insensitive=True)
    elif kind in ("querystring", "multivaluequerystring"):
        values = _all(sources.query, rest, case_insensitive=False)
    else:
        return None
    if not values:
        return None
    return ",".join(values) if kind.startswith("multivalue") else values[-1]


@dataclass
class MappedRequest:
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)


def apply_request_parameters(
    request_parameters: Mapping[str, str], sources: MappingSources
) -> MappedRequest:
    """Evaluate an integration's ``RequestParameters`` (target -> source)."""
    mapped = MappedRequest()
    for target, source in request_parameters.items():
        value = resolve(source, sources)
        if value is None:
            continue
        if target.startswith("integration.request.header."):
            mapped.headers[target[len("integration.request.header.") :]] = value
        elif target.startswith("integration.request.querystring."):
            mapped.query[target[len("integration.request.querystring.") :]] = value
    return mapped
