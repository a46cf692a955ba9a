"""Plain data types shared by the SynthScenes generator, the dataset loaders and the scanpath code.

These types carry no torch: they are numpy arrays and small dataclasses, so that the
simulated searcher, the metrics and the dataset loaders can be used without a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Box = tuple[float, float, float, float]
"""An axis-aligned box in pixels: (x0, y0, x1, y1), x1 and y1 exclusive."""


@dataclass(frozen=True)
class SceneObject:
    """One object of a scene.

    `category` indexes `CATEGORIES` of the generator; `color` is an RGB triple in 0..255;
    `texture` and `size` are small integers the generator draws from; `cell` is the
    (row, col) of the object on a grid layout, or None on a free layout.
    """

    category: int
    color: tuple[int, int, int]
    texture: int
    box: Box
    cell: tuple[int, int] | None = None


@dataclass(frozen=True)
class LabelledImage:
    """One image of the labelled classification set: one labelled object over clutter.

    `image` is uint8 (H, W, 3); `label` the object's category; `box` its ground-truth box.
    """

    image: np.ndarray
    label: int
    box: Box


@dataclass(frozen=True)
class SearchScene:
    """A visual-search scene: many objects, one of which is the target.

    `image` is uint8 (H, W, 3); `objects` are listed row-major on grid layouts
    (index = row * cols + col); `grid` is (rows, cols) or None for a free layout;
    `target` indexes `objects`.
    """

    image: np.ndarray
    objects: tuple[SceneObject, ...]
    target: int
    grid: tuple[int, int] | None = None
    meta: dict[str, object] = field(default_factory=dict)
