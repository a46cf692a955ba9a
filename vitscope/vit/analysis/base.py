"""The one small interface every analysis shares.

An analysis is a plain function `run(lm, source, params, progress) -> AnalysisResult`:
it takes a loaded model, an image source and its kind's params (a pydantic model from
`vitscope.contracts.params`), and returns named arrays plus a small JSON summary. The Celery task,
the CLI (`vitscope run`) and notebooks all call the same function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Progress = Callable[[float, str], None]
"""Called with (fraction done in 0..1, a short message)."""


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
