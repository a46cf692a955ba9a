"""Real scanpath data: OAT's processed pickle and the Amazon book-cover JSON.

Both return `ScanpathRecord`s (trials shared between the subjects of one display).

**OAT processed format** (`load_oat_pickle`): a pickled list of dicts with `package_target`
(1-based target id), `package_seq` (1-based object indices), `X`, `Y`, `question_img_feature`
(the N object crops, row-major on the layout's grid), `id`, `tgt_id`, `layout_id`, `sub_id`.
vitscope never stores pickle itself; to read this third-party file it uses a RESTRICTED
unpickler whose `find_class` admits only builtin containers (list, dict, tuple, set,
frozenset) and numpy array/scalar reconstruction (`numpy[._]core.multiarray._reconstruct`,
`…scalar`, `numpy[._]core.numeric._frombuffer`, `numpy.ndarray`, `numpy.dtype`). Anything
else (a class, a function such as `os.system` smuggled in through `__reduce__`) is refused
with a `UserError` before it is called. Crops may be HWC or CHW, uint8 or float (0..1 floats
are scaled by 255, others clipped to 0..255). The layout has no pixel geometry, so each
object gets the grid cell of its index with the crop's size as the cell size. Records with
the same (layout_id, tgt_id) share one trial.

**Amazon book covers** (`load_amazon`): a JSON object keyed by image file name (or a list of
entries with an `image`/`name` field), each with `fixations{subject: [[x, y], …]}`,
`ground_truth{xmin, xmax, ymin, ymax}`, `size` and `target`; images lie beside the JSON (or
in `image_dir`). The image is split into a uniform R×C grid (default 6×14 = 84 covers);
each fixation maps to the cell containing it, else to the nearest cell centre; consecutive
duplicates are kept (they are refixations). The target is the cell of maximal IoU with the
ground-truth box. Scanpaths whose length lies outside mean ± 3σ (over the file) are dropped.
"""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vitscope.contracts.errors import UserError
from vitscope.scanpath.trials import ScanpathRecord, Trial

SAFE_GLOBALS = frozenset(
    [("builtins", name) for name in ("list", "dict", "tuple", "set", "frozenset")]
    + [(mod, "_reconstruct") for mod in ("numpy.core.multiarray", "numpy._core.multiarray")]
    + [(mod, "scalar") for mod in ("numpy.core.multiarray", "numpy._core.multiarray")]
    + [(mod, "_frombuffer") for mod in ("numpy.core.numeric", "numpy._core.numeric")]
    + [("numpy", "ndarray"), ("numpy", "dtype")]
)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only containers and numpy arrays (see module docstring)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in SAFE_GLOBALS:
            return super().find_class(module, name)
        raise UserError(
            f"refusing to unpickle {module}.{name}: this loader reads only lists, dicts and numpy "
            "arrays (OAT's processed format); the file is not that format or is unsafe"
        )


def restricted_loads(data: bytes) -> Any:
    """Unpickle bytes with `RestrictedUnpickler`; malformed data raises `UserError`."""
    try:
        return RestrictedUnpickler(io.BytesIO(data)).load()
    except UserError:
        raise
    except Exception as exc:  # a malformed pickle can raise almost anything
        raise UserError(f"not a readable pickle: {exc}") from exc


def _one_int(value: Any, what: str) -> int:
    arr = np.asarray(value).reshape(-1)
    if arr.size != 1 or not np.issubdtype(arr.dtype, np.number):
        raise UserError(f"{what} must be one number, got {value!r}")
    return int(arr[0])


def _crop_uint8(crop: Any, what: str) -> np.ndarray:
    """A crop as (h, w, 3) uint8 from HWC/CHW, grey, uint8 or float input."""
    arr = np.asarray(crop)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(1, 2, 0)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4) or min(arr.shape[:2]) < 1:
        raise UserError(f"{what}: a crop must be an (h, w, 3) image, got shape {arr.shape}")
    arr = np.repeat(arr, 3, axis=2) if arr.shape[-1] == 1 else arr[..., :3]
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        arr = arr * 255 if arr.size and arr.max() <= 1.0 else arr
        arr = np.clip(np.round(arr), 0, 255).astype(np.uint8)
    return arr


def _grid_trial(crops: list[np.ndarray], grid: tuple[int, int], target: int, trial_id: str) -> Trial:
    """A trial whose objects sit on a uniform grid with the first crop's size as the cell size."""
    rows, cols = grid
    if len(crops) != rows * cols:
        raise UserError(f"trial {trial_id!r}: {len(crops)} crops do not fill a {rows}x{cols} grid")
    h, w = crops[0].shape[:2]
    idx = np.arange(rows * cols)
    cells = np.stack([idx // cols, idx % cols], axis=1)
    boxes = np.stack([cells[:, 1] * w, cells[:, 0] * h, (cells[:, 1] + 1) * w, (cells[:, 0] + 1) * h], axis=1)
    return Trial(
        boxes=boxes.astype(np.float64),
        cells=cells,
        grid=grid,
        target=target,
        image_size=(rows * h, cols * w),
        crops=tuple(crops),
        trial_id=trial_id,
    )


def _oat_record(entry: Any, grid: tuple[int, int], trials: dict[str, Trial], where: str) -> ScanpathRecord:
    if not isinstance(entry, Mapping):
        raise UserError(f"{where}: expected a dict, got {type(entry).__name__}")
    missing = [k for k in ("package_target", "package_seq", "question_img_feature") if k not in entry]
    if missing:
        raise UserError(f"{where}: missing key(s) {', '.join(missing)}")
    key = f"{entry.get('layout_id')}-{entry.get('tgt_id')}" if "layout_id" in entry else where
    if key not in trials:
        crops = [_crop_uint8(c, where) for c in entry["question_img_feature"]]
        target = _one_int(entry["package_target"], f"{where}: package_target") - 1
        trials[key] = _grid_trial(crops, grid, target, key)
    seq = tuple(int(v) - 1 for v in np.asarray(entry["package_seq"]).reshape(-1))
    return ScanpathRecord(trials[key], seq, subject=str(entry.get("sub_id", "")))


def load_oat_pickle(path: str | Path, grid: tuple[int, int]) -> list[ScanpathRecord]:
    """Read OAT's processed pickle (restricted, see module docstring) on a `grid` (rows, cols)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist")
    data = restricted_loads(path.read_bytes())
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a list of trial dicts, got {type(data).__name__}")
    trials: dict[str, Trial] = {}
    return [_oat_record(e, grid, trials, f"{path} item {k}") for k, e in enumerate(data)]


def grid_boxes(image_size: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
    """Boxes (R·C, 4) of a uniform grid over an (H, W) image, row-major."""
    (h, w), (rows, cols) = image_size, grid
    r, c = np.divmod(np.arange(rows * cols), cols)
    ch, cw = h / rows, w / cols
    return np.stack([c * cw, r * ch, (c + 1) * cw, (r + 1) * ch], axis=1)


def fixation_objects(points: np.ndarray, boxes: np.ndarray) -> list[int]:
    """Object index of each (x, y) point: the first box containing it, else the nearest centre."""
    if len(points) == 0:
        return []
    x, y = points[:, :1], points[:, 1:2]
    inside = (x >= boxes[:, 0]) & (x < boxes[:, 2]) & (y >= boxes[:, 1]) & (y < boxes[:, 3])
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    nearest = np.linalg.norm(points[:, None, :2] - centres[None], axis=-1).argmin(axis=1)
    return np.where(inside.any(axis=1), inside.argmax(axis=1), nearest).tolist()


def best_iou(boxes: np.ndarray, box: np.ndarray) -> int:
    """Index of the box with the largest IoU with `box` (x0, y0, x1, y1)."""
    iw = np.clip(np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0]), 0, None)
    ih = np.clip(np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1]), 0, None)
    inter = iw * ih
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + (box[2] - box[0]) * (box[3] - box[1]) - inter
    return int(np.argmax(inter / np.maximum(union, 1e-9)))


def _amazon_entries(data: Any, where: Path) -> Iterable[tuple[str, Mapping[str, Any]]]:
    if isinstance(data, Mapping):
        return [(str(k), v) for k, v in data.items()]
    if isinstance(data, list):
        return [(str(e.get("image") or e.get("name") or ""), e) for e in data if isinstance(e, Mapping)]
    raise UserError(f"{where}: expected an object keyed by image name or a list of entries")


def _read_image(path: Path) -> np.ndarray:
    if not path.is_file():
        raise UserError(f"image {path} named in the JSON does not exist (images go beside the JSON)")
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _amazon_trial(name: str, entry: Mapping[str, Any], folder: Path, grid: tuple[int, int]) -> Trial:
    try:
        gt = entry["ground_truth"]
        gt_box = np.array([gt["xmin"], gt["ymin"], gt["xmax"], gt["ymax"]], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"image {name!r}: ground_truth needs xmin, xmax, ymin, ymax") from exc
    image = _read_image(folder / name)
    boxes = grid_boxes(image.shape[:2], grid)
    r, c = np.divmod(np.arange(len(boxes)), grid[1])
    return Trial(
        boxes=boxes,
        cells=np.stack([r, c], axis=1),
        grid=grid,
        target=best_iou(boxes, gt_box),
        image_size=image.shape[:2],
        image=image,
        trial_id=name,
        meta={"target": entry.get("target")},
    )


def _drop_length_outliers(records: list[ScanpathRecord]) -> list[ScanpathRecord]:
    lengths = np.array([len(r.scanpath) for r in records], dtype=np.float64)
    if len(lengths) < 2:
        return records
    mean, std = lengths.mean(), lengths.std()
    return [r for r, n in zip(records, lengths, strict=True) if abs(n - mean) <= 3 * std]


def load_amazon(
    json_path: str | Path, grid: tuple[int, int] = (6, 14), image_dir: str | Path | None = None
) -> list[ScanpathRecord]:
    """Read the Amazon book-cover JSON (see module docstring); returns one record per subject
    and image, length outliers dropped."""
    json_path = Path(json_path)
    try:
        data = json.loads(json_path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {json_path} as JSON: {exc}") from exc
    folder = Path(image_dir) if image_dir is not None else json_path.parent
    records: list[ScanpathRecord] = []
    for name, entry in _amazon_entries(data, json_path):
        trial = _amazon_trial(name, entry, folder, grid)
        fixations = entry.get("fixations")
        if not isinstance(fixations, Mapping):
            raise UserError(f"image {name!r}: 'fixations' must map subject -> [[x, y], ...]")
        for subject, points in fixations.items():
            pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
            if len(pts):
                records.append(ScanpathRecord(trial, tuple(fixation_objects(pts, trial.boxes)), str(subject)))
    return _drop_length_outliers(records)
