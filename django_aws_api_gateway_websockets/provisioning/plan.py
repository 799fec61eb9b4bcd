"""Plans: the ordered AWS calls that would make AWS match the records, and how to print them.

A :class:`Step` is one boto3 call. Parameters that only exist once an earlier step has run (the
id of an API created in the same run) are :class:`Ref` placeholders the runner fills in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

#: Verbs that change AWS; everything else (get, list, describe) only reads.
MUTATING_PREFIXES = ("create_", "update_", "delete_", "request_", "change_")


@dataclass(frozen=True)
class Ref:
    """A value another step produces: ``Ref("api")`` is the id of the API once created."""

    name: str
    fmt: str = "{}"

    def __str__(self) -> str:
        return self.fmt.format(f"<{self.name}>")


@dataclass
class Step:
    """One AWS call. ``key`` names the resource it concerns in the record's bookkeeping
    (``api``, ``integration:$connect``, ``route:shout``…); ``wait`` marks a polling read."""

    service: str
    operation: str
    params: dict[str, Any]
    reason: str
    key: str = ""
    wait: str = ""

    @property
    def mutating(self) -> bool:
        return self.operation.startswith(MUTATING_PREFIXES)

    def describe(self, secrets: tuple[str, ...] = ()) -> str:
        """One line: ``service.operation(params)  # reason``, with gateway secrets masked."""
        args = ", ".join(f"{k}={_show(v, secrets)}" for k, v in self.params.items())
        return f"{self.service}.{self.operation}({args})  # {self.reason}"


@dataclass
class Difference:
    """Something in AWS that does not match the records (what a drift check reports)."""

    resource: str
    message: str

    def __str__(self) -> str:
        return f"{self.resource}: {self.message}"


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    #: Things the user must know or do that no AWS call here can do (e.g. a DNS record to add).
    notes: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def mutating_steps(self) -> list[Step]:
        return [s for s in self.steps if s.mutating]

    @property
    def in_sync(self) -> bool:
        return not self.mutating_steps

    def add(self, step: Step, difference: str = "") -> Step:
        self.steps.append(step)
        if difference:
            self.differences.append(Difference(step.key or step.operation, difference))
        return step

    def describe(self, secrets: tuple[str, ...] = ()) -> list[str]:
        return [step.describe(secrets) for step in self.steps]


def resolve(value: Any, refs: dict[str, Any]) -> Any:
    """``value`` with every :class:`Ref` replaced by what ``refs`` holds for it."""
    if isinstance(value, Ref):
        if value.name not in refs:
            raise KeyError(f"No value for {value.name!r} yet")
        return value.fmt.format(refs[value.name])
    if isinstance(value, dict):
        return {k: resolve(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, refs) for v in value]
    return value


def _show(value: Any, secrets: tuple[str, ...]) -> str:
    text = str(value) if isinstance(value, Ref) else json.dumps(_plain(value), sort_keys=False)
    for secret in secrets:
        text = text.replace(secret, "********")
    return text


def _plain(value: Any) -> Any:
    if isinstance(value, Ref):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
