"""The one small interface every analysis shares.

An analysis is a plain function `run(lm, source, params, progress) -> AnalysisResult`:
it takes a loaded model, an image source and its kind's params (a pydantic model from
`vitscope.contracts.kinds`), and returns named arrays plus a small JSON summary. The Celery task,
the CLI (`vitscope run`) and notebooks all call the same function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from vitscope.contracts.errors import UserError

if TYPE_CHECKING:
    from vitscope.vit.data.geometry import InputGeometry
    from vitscope.vit.data.inputs import Batch, ImageSource

Progress = Callable[[float, str], None]
"""Called with (fraction done in 0..1, a short message). It may raise `Stopped` to end the analysis."""


class Stopped(Exception):
    """Raised by a `Progress` callback to stop an analysis where it stands: the job was cancelled,
    or ran over its time or memory budget. `stream` calls the callback after every batch, so an
    analysis stops within one batch; the exception leaves `run` and the caller frees what it held."""


def no_progress(_fraction: float, _message: str) -> None:
    """A progress callback that ignores updates."""


@dataclass
class AnalysisResult:
    """Named arrays (stored as .npy, served raw or as JSON) and a JSON-able summary."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, value: Any) -> None:
        """Store `value` as a numpy array named `name` (tensors are moved to the CPU first)."""
        if hasattr(value, "detach"):
            value = value.detach().float().cpu().numpy() if value.is_floating_point() else value.cpu().numpy()
        self.arrays[name] = np.asarray(value)


def require_images(source: ImageSource) -> int:
    """Return the number of images in `source`; raise `UserError` if there are none."""
    if len(source) < 1:
        raise UserError("the dataset is empty: give at least one image")
    return len(source)


def stream(
    source: ImageSource,
    batch_size: int,
    size: tuple[int, int] | InputGeometry,
    progress: Progress,
    label: str,
    span: tuple[float, float] = (0.0, 1.0),
) -> Iterator[Batch]:
    """Yield the source's batches for a streaming analysis to fold; the loop every analysis shares.

    Refuses an empty source before any work (`UserError`), then after each batch reports
    `label: done/total images` with the fraction scaled into `span` (a phase of a longer job).
    That call is where a job is cancelled: a callback that raises `Stopped` ends the loop.
    """
    total = require_images(source)
    start, end = span
    done = 0
    for batch in source.batches(batch_size, size):
        yield batch
        done += len(batch.indices)
        progress(start + (end - start) * done / total, f"{label}: {done}/{total} images")
