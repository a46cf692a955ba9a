"""The registry of analysis kinds: each declared once, in its own module, read by every tier.

Built-in kinds are the modules of this package (one per kind, each defining `KIND`). More kinds
come from modules named in `VITSCOPE_EXTRA_KINDS` (comma-separated import paths) or registered
under the `vitscope.kinds` entry-point group by an installed package: adding a kind takes its
declaration module, its analysis and (optionally) its dashboard page, and no other file.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from functools import cache
from importlib.metadata import entry_points

from vitscope.contracts.errors import UserError
from vitscope.contracts.kinds.base import (
    ArraySpec,
    ImageParams,
    Kind,
    ModelBlock,
    Params,
    ResultSchemaError,
    Summary,
    check_result,
)

EXTRA_KINDS_ENV = "VITSCOPE_EXTRA_KINDS"
_NOT_KINDS = {"base"}

__all__ = [
    "ArraySpec",
    "ImageParams",
    "Kind",
    "ModelBlock",
    "Params",
    "ResultSchemaError",
    "Summary",
    "all_kinds",
    "check_result",
    "get",
    "names",
]


@cache
def all_kinds() -> dict[str, Kind]:
    """Return every declared kind by name: the built-in ones first, then extra modules'."""
    paths = [f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__) if m.name not in _NOT_KINDS]
    paths += [p.strip() for p in os.environ.get(EXTRA_KINDS_ENV, "").split(",") if p.strip()]
    paths += [ep.value for ep in entry_points(group="vitscope.kinds")]
    kinds: dict[str, Kind] = {}
    declared = [_declared(path) for path in paths]
    for path, kind in sorted(zip(paths, declared, strict=True), key=lambda pk: pk[1].order):
        if kind.name in kinds:
            raise RuntimeError(f"kind {kind.name!r} is declared twice (again in {path})")
        kinds[kind.name] = kind
    return kinds


def _declared(path: str) -> Kind:
    module = importlib.import_module(path)
    kind = getattr(module, "KIND", None)
    if not isinstance(kind, Kind):
        raise RuntimeError(f"kind module {path} defines no KIND = Kind(...)")
    return kind


def names() -> list[str]:
    """Return the names of every kind, in declaration order."""
    return list(all_kinds())


def get(name: object) -> Kind:
    """Return the kind called `name`; raise `UserError` naming the known kinds otherwise."""
    kinds = all_kinds()
    if not isinstance(name, str) or name not in kinds:
        raise UserError(f"unknown kind {name!r}: one of {', '.join(kinds)}")
    return kinds[name]
