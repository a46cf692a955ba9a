"""Job kind -> the analysis that computes it, imported only when a job of that kind runs.

Each kind names a module that exposes

    run(lm: LoadedModel, source, params, progress: Progress) -> AnalysisResult

(see `vitscope.vit.analysis.base`). A kind whose inputs are not plain images (scanpath: search
scenes) also exposes `open_source(inputs, fetch, class_names)` in the same module; every
other kind gets its source from `vitscope.vit.data.inputs.open_source`. The Celery task and
`vitscope run` both go through `get(kind)`, so a kind added here is served by both.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from vitscope.contracts.errors import UserError
from vitscope.contracts.jobs import Inputs

if TYPE_CHECKING:
    from vitscope.vit.analysis.base import AnalysisResult, Progress
    from vitscope.vit.models import LoadedModel

MODULES: dict[str, str] = {
    "eigencam": "vitscope.vit.analysis.eigencam",
    "head-importance": "vitscope.vit.analysis.head_importance",
    "attention-profile": "vitscope.vit.analysis.attention_profile",
    "attention-patterns": "vitscope.vit.analysis.attention_patterns",
    "scanpath": "vitscope.scanpath.job",
}

OpenSource = Callable[[Inputs, Callable[[str], bytes], Sequence[str]], Any]


@dataclass(frozen=True)
class Analysis:
    """A kind's `run` function and the function that turns job inputs into what `run` iterates over."""

    kind: str
    run: Callable[[LoadedModel, Any, Any, Progress], AnalysisResult]
    open_source: OpenSource


def get(kind: str) -> Analysis:
    """Return the analysis of `kind`; raise `UserError` if the kind is unknown or not installed here."""
    if kind not in MODULES:
        raise UserError(f"unknown kind {kind!r}: one of {', '.join(MODULES)}")
    module = _import(MODULES[kind], kind)
    open_source: OpenSource | None = getattr(module, "open_source", None)
    if open_source is None:
        from vitscope.vit.data.inputs import open_source as open_images

        open_source = open_images
    return Analysis(kind, module.run, open_source)


def available() -> list[str]:
    """Return the kinds whose analysis module exists in this installation (nothing is imported)."""
    return [kind for kind, path in MODULES.items() if _exists(path)]


def _import(path: str, kind: str) -> ModuleType:
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError as exc:
        # only the analysis module itself missing means "not available"; a missing
        # dependency inside it is a bug that must surface as one
        if exc.name is None or not path.startswith(exc.name):
            raise
        raise UserError(f"the {kind!r} analysis is not available in this vitscope installation") from exc


def _exists(path: str) -> bool:
    try:
        return importlib.util.find_spec(path) is not None
    except ModuleNotFoundError:
        return False
