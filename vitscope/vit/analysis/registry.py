"""Kind -> the analysis that computes it, imported only when a job of that kind runs.

Each kind's declaration (`vitscope.contracts.kinds`) names its `run` function

    run(lm: LoadedModel, source, params, progress: Progress) -> AnalysisResult

(see `vitscope.vit.analysis.base`) and, for a kind whose inputs are not plain images (scanpath:
search scenes), its own `open_source(inputs, fetch, class_names)`; every other kind gets its
source from `vitscope.vit.data.inputs.open_source`. The Celery task and `vitscope run` both
call `execute`, which adds the model block to the summary and checks the result against the
kind's schema before anyone stores it.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vitscope.contracts import kinds
from vitscope.contracts.errors import UserError
from vitscope.contracts.jobs import Inputs, JobSpec
from vitscope.contracts.kinds import ModelBlock, check_result

if TYPE_CHECKING:
    from vitscope.vit.analysis.base import AnalysisResult, Progress
    from vitscope.vit.models import LoadedModel

OpenSource = Callable[[Inputs, Callable[[str], bytes], Sequence[str]], Any]


@dataclass(frozen=True)
class Analysis:
    """A kind's `run` function and the function that turns job inputs into what `run` iterates over."""

    kind: str
    run: Callable[[LoadedModel, Any, Any, Progress], AnalysisResult]
    open_source: OpenSource


def get(name: str) -> Analysis:
    """Return the analysis of kind `name`; raise `UserError` if it is unknown or not installed here."""
    kind = kinds.get(name)
    run = _function(kind.run, name)
    if kind.open_source is not None:
        open_source = _function(kind.open_source, name)
    else:
        from vitscope.vit.data.inputs import open_source
    return Analysis(name, run, open_source)


def execute(
    lm: LoadedModel, spec: JobSpec, fetch: Callable[[str], bytes], progress: Progress
) -> AnalysisResult:
    """Run the job's analysis on `lm`; return its result with the model block, checked against its schema.

    Raises `UserError` for bad inputs and `ResultSchemaError` (naming the array) for a result
    that breaks its kind's declaration.
    """
    analysis = get(spec.kind)
    params = spec.typed_params()
    image_size = getattr(params, "image_size", None)
    if image_size is not None:
        lm = lm.resized(image_size)
    source = analysis.open_source(spec.inputs, fetch, lm.labels)
    result = analysis.run(lm, source, params, progress)
    result.summary = {**result.summary, "model": model_block(lm).model_dump(mode="json")}
    check_result(kinds.get(spec.kind), result.arrays, result.summary)
    return result


def model_block(lm: LoadedModel) -> ModelBlock:
    """The summary block that says which model a result was computed with."""
    layout = lm.layout
    return ModelBlock(
        spec=lm.spec,
        layers=lm.num_layers,
        heads=lm.num_heads,
        grid=layout.grid,
        patch_size=layout.patch_size,
        image_size=layout.image_size,
        prefix_tokens=list(layout.prefix_roles),
        labels=list(lm.labels),
        classifier=lm.classifier,
    )


def available() -> list[str]:
    """Return the kinds whose analysis module exists in this installation (nothing is imported)."""
    return [name for name, kind in kinds.all_kinds().items() if _exists(kind.run.partition(":")[0])]


def _function(path: str, kind: str) -> Any:
    module_path, _, name = path.partition(":")
    try:
        module = importlib.import_module(module_path)
    except ModuleNotFoundError as exc:
        # only the analysis module itself missing means "not available"; a missing
        # dependency inside it is a bug that must surface as one
        if exc.name is None or not module_path.startswith(exc.name):
            raise
        raise UserError(f"the {kind!r} analysis is not available in this vitscope installation") from exc
    return getattr(module, name)


def _exists(path: str) -> bool:
    try:
        return importlib.util.find_spec(path) is not None
    except ModuleNotFoundError:
        return False
