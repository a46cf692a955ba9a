"""Small hand-made search scenes for the scanpath tests (a few objects, checkable by hand)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from vitscope.scanpath.trials import Trial, trial_from_scene
from vitscope.vit.data.scenes import SceneObject, SearchScene

CELL = 20
PALETTE = [(220, 40, 40), (40, 170, 60), (40, 80, 220), (240, 210, 40), (200, 60, 200), (40, 200, 210)]


def grid_scene(
    rows: int = 2, cols: int = 3, target: int = 4, categories: list[int] | None = None
) -> SearchScene:
    """A rows x cols shelf of coloured squares, one per 20 px cell, with a 4 px margin.

    Object i has colour PALETTE[i % 6], texture 0 and category `categories[i]` (default i % 3).
    """
    image = np.full((rows * CELL, cols * CELL, 3), 128, dtype=np.uint8)
    objects = []
    for i in range(rows * cols):
        r, c = divmod(i, cols)
        x0, y0 = c * CELL + 4, r * CELL + 4
        colour = PALETTE[i % len(PALETTE)]
        image[y0 : y0 + 12, x0 : x0 + 12] = colour
        cat = categories[i] if categories else i % 3
        objects.append(SceneObject(cat, colour, 0, (x0, y0, x0 + 12.0, y0 + 12.0), (r, c)))
    return SearchScene(image=image, objects=tuple(objects), target=target, grid=(rows, cols))


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """The CPU is shared: one thread per test, restored afterwards for other folders' tests."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def trial() -> Trial:
    """A 2x3 trial whose target is object 4 (row 1, col 1)."""
    return trial_from_scene(grid_scene(), "hand-2x3")
