"""The search trial every scanpath component shares: objects, positions, target, appearance.

A `Trial` is one search display (SynthSearch scene, Amazon collage, OAT shelf). A
`ScanpathRecord` is one subject's scanpath on a trial; several records share one trial, so
crops are held once. Both validate on construction and raise `UserError` for input a person
can fix (no objects, target out of range, boxes outside the image, fixations on no object).

Grid positions: on grid layouts an object's (row, col) is its cell; on free layouts the
object centres are binned into a FREE_BINS × FREE_BINS virtual grid, so the positional
table (K ≥ FREE_BINS) still applies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vitscope.contracts.errors import UserError
from vitscope.vit.data.scenes import SceneObject, SearchScene
from vitscope.vit.data.synthscenes import crop, object_similarity

FREE_BINS = 14
BOX_TOLERANCE = 0.5  # pixels: boxes may touch the border after float rounding


@dataclass(frozen=True, eq=False)
class Trial:
    """One visual-search display.

    `boxes` (N, 4) float x0, y0, x1, y1 in pixels; `cells` (N, 2) int (row, col) on `grid`
    (rows, cols); `image_size` (H, W); appearance from `image` (H, W, 3) uint8 cut by the
    boxes, or from `crops` (N arrays (h, w, 3) uint8); `target_crop` overrides the target's
    appearance (else the target object's crop); `objects` are the generator's attributes
    when known (SynthSearch), used by the simulator; `features` (N, F) float are precomputed
    per-object features for the model's "vit" appearance (the target's row is its template).
    """

    boxes: np.ndarray
    cells: np.ndarray
    grid: tuple[int, int]
    target: int
    image_size: tuple[int, int]
    image: np.ndarray | None = None
    crops: tuple[np.ndarray, ...] | None = None
    target_crop: np.ndarray | None = None
    objects: tuple[SceneObject, ...] | None = None
    features: np.ndarray | None = None
    trial_id: str = ""
    meta: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _validate_trial(self)

    @property
    def n(self) -> int:
        """Number of objects N."""
        return len(self.boxes)

    @property
    def centres(self) -> np.ndarray:
        """Object centres (N, 2) as (x, y) pixels."""
        return (self.boxes[:, :2] + self.boxes[:, 2:]) / 2

    @property
    def diagonal(self) -> float:
        """Image diagonal in pixels (the MultiMatch normaliser)."""
        return float(np.hypot(*self.image_size))


@dataclass(frozen=True, eq=False)
class ScanpathRecord:
    """One subject's scanpath on a trial: object indices, 0-based, in fixation order."""

    trial: Trial
    scanpath: tuple[int, ...]
    subject: str = ""

    def __post_init__(self) -> None:
        if not self.scanpath:
            raise UserError(f"trial {self.trial.trial_id!r}: empty scanpath for subject {self.subject!r}")
        bad = [i for i in self.scanpath if not 0 <= i < self.trial.n]
        if bad:
            raise UserError(
                f"trial {self.trial.trial_id!r}: scanpath fixates object(s) {bad[:5]} but the trial "
                f"has {self.trial.n} objects (0..{self.trial.n - 1})"
            )


def _validate_trial(t: Trial) -> None:
    name = f"trial {t.trial_id!r}"
    if t.boxes.ndim != 2 or t.boxes.shape[1] != 4 or len(t.boxes) == 0:
        raise UserError(f"{name}: a search trial needs at least one object box (N, 4), got {t.boxes.shape}")
    if not 0 <= t.target < len(t.boxes):
        raise UserError(f"{name}: target index {t.target} is out of range for {len(t.boxes)} objects")
    _validate_boxes(name, t.boxes, t.image_size)
    rows, cols = t.grid
    if t.cells.shape != (len(t.boxes), 2) or (t.cells < 0).any() or (t.cells >= (rows, cols)).any():
        raise UserError(f"{name}: object cells must be (N, 2) inside the {rows}x{cols} grid")
    if t.crops is not None and len(t.crops) != len(t.boxes):
        raise UserError(f"{name}: {len(t.crops)} crops for {len(t.boxes)} objects")
    if t.features is not None and (t.features.ndim != 2 or len(t.features) != len(t.boxes)):
        raise UserError(f"{name}: features must be (N, F) for {len(t.boxes)} objects, got {t.features.shape}")
    if t.image is None and t.crops is None:
        raise UserError(f"{name}: needs an image or per-object crops for the objects' appearance")


def _validate_boxes(name: str, boxes: np.ndarray, image_size: tuple[int, int]) -> None:
    h, w = image_size
    if not np.isfinite(boxes).all():
        raise UserError(f"{name}: object boxes contain NaN or infinite values")
    if (boxes[:, 2] <= boxes[:, 0]).any() or (boxes[:, 3] <= boxes[:, 1]).any():
        raise UserError(f"{name}: object boxes must have x1 > x0 and y1 > y0")
    tol = BOX_TOLERANCE
    outside = (boxes[:, 0] < -tol) | (boxes[:, 1] < -tol) | (boxes[:, 2] > w + tol) | (boxes[:, 3] > h + tol)
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise UserError(f"{name}: object box {first} {boxes[first].tolist()} lies outside the {w}x{h} image")


def grid_cells(boxes: np.ndarray, grid: tuple[int, int] | None) -> tuple[np.ndarray, tuple[int, int]]:
    """Return ((N, 2) int cells, grid): row-major cells on a grid, binned centres otherwise."""
    n = len(boxes)
    if grid is not None:
        rows, cols = grid
        if n != rows * cols:
            raise UserError(f"a {rows}x{cols} grid needs {rows * cols} objects, got {n}")
        idx = np.arange(n)
        return np.stack([idx // cols, idx % cols], axis=1), grid
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    lo, hi = centres.min(axis=0), centres.max(axis=0)
    span = np.maximum(hi - lo, 1e-6)
    bins = np.minimum((centres - lo) / span * FREE_BINS, FREE_BINS - 1).astype(np.int64)
    return bins[:, ::-1].copy(), (FREE_BINS, FREE_BINS)


def trial_from_scene(scene: SearchScene, trial_id: str = "") -> Trial:
    """Return the `Trial` of a SynthSearch scene (objects row-major on grid layouts)."""
    if not scene.objects:
        raise UserError(f"scene {trial_id!r} has no objects to search")
    boxes = np.asarray([o.box for o in scene.objects], dtype=np.float64)
    cells, grid = grid_cells(boxes, scene.grid)
    h, w = scene.image.shape[:2]
    return Trial(
        boxes=boxes,
        cells=cells,
        grid=grid,
        target=scene.target,
        image_size=(h, w),
        image=scene.image,
        objects=scene.objects,
        trial_id=trial_id,
    )


def _as_rgb(array: np.ndarray) -> np.ndarray:
    """Return an (h, w, 3) view of a grey, RGB or RGBA image."""
    if array.ndim == 2:
        return np.repeat(array[..., None], 3, axis=2)
    return array[..., :3]


def resize_rgb(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resample a whole (h, w[, c]) image to `size` = (H, W); returns (H, W, 3) uint8."""
    h, w = array.shape[:2]
    return crop(_as_rgb(array), (0.0, 0.0, float(w), float(h)), size)


def object_crops(trial: Trial, size: tuple[int, int]) -> np.ndarray:
    """Return every object's crop resampled to `size` (h, w): (N, h, w, 3) uint8."""
    if trial.crops is not None:
        return np.stack([resize_rgb(c, size) for c in trial.crops])
    assert trial.image is not None  # validated: an image or crops
    image = _as_rgb(trial.image)
    return np.stack([_crop_box(image, box, size) for box in trial.boxes])


def target_crop(trial: Trial, size: tuple[int, int]) -> np.ndarray:
    """Return the target template resampled to `size`: (h, w, 3) uint8."""
    if trial.target_crop is not None:
        return resize_rgb(trial.target_crop, size)
    if trial.crops is not None:
        return resize_rgb(trial.crops[trial.target], size)
    assert trial.image is not None
    return _crop_box(_as_rgb(trial.image), trial.boxes[trial.target], size)


def _crop_box(image: np.ndarray, box: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`crop` of one box, given only a window around it: `crop` converts its whole input to
    float, which costs seconds per object on a 2560×1600 photo."""
    h, w = image.shape[:2]
    x0, y0 = max(int(np.floor(box[0])) - 2, 0), max(int(np.floor(box[1])) - 2, 0)
    x1, y1 = min(int(np.ceil(box[2])) + 2, w), min(int(np.ceil(box[3])) + 2, h)
    local = (float(box[0]) - x0, float(box[1]) - y0, float(box[2]) - x0, float(box[3]) - y0)
    return crop(image[y0:y1, x0:x1], local, size)


def target_similarity(trial: Trial) -> np.ndarray:
    """Return each object's similarity to the target, (N,) float in 0..1.

    From the generator's attributes (`object_similarity`) when the trial has them; otherwise
    the histogram intersection of 4×4×4-bin RGB histograms of the crops (the colour
    similarity of OAT's RGB baseline).
    """
    if trial.objects is not None:
        goal = trial.objects[trial.target]
        return np.array([object_similarity(o, goal) for o in trial.objects], dtype=np.float64)
    crops = object_crops(trial, (32, 32))
    hists = np.stack([_rgb_histogram(c) for c in crops])
    goal_hist = _rgb_histogram(target_crop(trial, (32, 32)))
    return np.minimum(hists, goal_hist[None]).sum(axis=1)


def _rgb_histogram(crop: np.ndarray) -> np.ndarray:
    q = (crop.reshape(-1, 3) // 64).astype(np.int64)
    hist = np.bincount(q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2], minlength=64).astype(np.float64)
    return hist / hist.sum()
