"""A database router for the test suite: routes nothing until a test sets
:attr:`PackageRouter.alias`, then sends every model (the package's, and the users its tokens and
sessions point at: Django has no relations across databases) to that alias, leaving
``default`` untouched, so a query that ignores the router shows up on ``default``."""

from __future__ import annotations

from typing import Any


class PackageRouter:
    #: The alias the package's models read from and write to; ``None``: Django's default.
    alias: str | None = None

    def _route(self, model: type[Any]) -> str | None:
        return PackageRouter.alias

    def db_for_read(self, model: type[Any], **hints: Any) -> str | None:
        return self._route(model)

    def db_for_write(self, model: type[Any], **hints: Any) -> str | None:
        return self._route(model)

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return None  # every table on every alias: a test chooses where rows live
