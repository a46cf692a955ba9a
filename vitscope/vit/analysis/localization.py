"""Weakly-supervised localization: how well a saliency map finds the labelled object's box.

The protocol of Grad-CAM (Selvaraju et al., 2017), which Eigen-CAM compares against: the map,
upsampled to the image, is binarised at a fraction of its maximum (pixels >= fraction * max),
a box is drawn around the single largest connected region (8-connected, as OpenCV's contours
that the Grad-CAM code used), and the box is correct when its IoU with the ground-truth box is
at least 0.5, optionally also requiring the top-1 prediction to be the label. The fraction is
swept over 0.05..0.95; the best fraction and the customary 0.15 are reported. Boxes are
(x0, y0, x1, y1) pixels with x1, y1 exclusive, as SynthScenes gives them.

Without peeking: each method's fraction is chosen on a calibration split (a seeded random
`CALIBRATION` share of the images) and the accuracy is reported on the other, held-out images
only, with a percentile bootstrap interval over them (`RESAMPLES` resamples, 95%); the best
Eigen-CAM layer is chosen on the calibration split too. Beside it, on the same held-out images:
mass in box, the pointing game and deletion / insertion AUC (`faithfulness`), for every Eigen-CAM
layer, rollout, Grad-CAM, a seeded random map and a centre prior, each with its interval, and the
best layer's paired difference to the random map.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from vitscope.contracts.errors import UserError
from vitscope.vit.analysis import faithfulness
from vitscope.vit.analysis.base import Progress, no_progress
from vitscope.vit.analysis.eigencam import Settings, analyse_batch, upsample
from vitscope.vit.data.inputs import Batch, ImageSource
from vitscope.vit.models import LoadedModel

FRACTIONS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))
CUSTOMARY = 0.15
IOU_MIN = 0.5
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
CALIBRATION = 0.3
"""Share of the images the thresholds (and the best layer) are chosen on; the rest are evaluated."""
RESAMPLES = 1000
CONFIDENCE = 0.95
SCORES = ("mass_in_box", "pointing_hit", "deletion_auc", "insertion_auc")
LOWER_IS_BETTER = frozenset({"deletion_auc"})


def largest_component_box(mask: np.ndarray) -> np.ndarray | None:
    """Return the box (4,) of the largest 8-connected region of a bool mask (H, W), None if empty.

    Equal sizes go to the region met first in row-major order.
    """
    labels, count = ndimage.label(mask, structure=EIGHT_CONNECTED)
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    rows, cols = ndimage.find_objects(labels)[int(np.argmax(sizes))]
    return np.array([cols.start, rows.start, cols.stop, rows.stop], dtype=np.float64)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Return the intersection over union of two boxes (x0, y0, x1, y1), x1 and y1 exclusive."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def map_box(saliency: np.ndarray, fraction: float) -> np.ndarray | None:
    """Return the box of the largest region where `saliency` (H, W) >= fraction * its max; None if max <= 0."""
    peak = float(saliency.max())
    if not peak > 0:
        return None  # an all-zero (or all-negative) map points at nothing
    return largest_component_box(saliency >= fraction * peak)


def box_hits(
    maps: np.ndarray, boxes: np.ndarray, fractions: Iterable[float] = FRACTIONS, iou_min: float = IOU_MIN
) -> np.ndarray:
    """Return bool (N, F): whether map n (N, H, W) thresholded at fraction f boxes boxes[n] with IoU >= iou_min."""
    fractions = tuple(fractions)
    hits = np.zeros((len(maps), len(fractions)), dtype=bool)
    for n, (saliency, truth) in enumerate(zip(maps, boxes, strict=True)):
        for f, fraction in enumerate(fractions):
            box = map_box(saliency, fraction)
            hits[n, f] = box is not None and box_iou(box, truth) >= iou_min
    return hits


# ---------------------------------------------------------------- held-out scores with intervals


def calibration_split(n: int, fraction: float = CALIBRATION, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return sorted (calibration, held-out) indices of n >= 2 images: a seeded random `fraction` of
    them (at least one, leaving at least one) and the rest; disjoint, together all n."""
    if n < 2:
        raise UserError("a calibration split needs at least 2 images with boxes")
    order = np.random.default_rng(seed).permutation(n)
    k = min(max(1, round(fraction * n)), n - 1)
    return np.sort(order[:k]), np.sort(order[k:])


def choose_fraction(hits: np.ndarray, calibration: np.ndarray) -> int:
    """Return the index of the fraction with the most hits (N, F) over the `calibration` rows only
    (ties: the lowest fraction)."""
    return int(np.argmax(hits[calibration].mean(0)))


def bootstrap(values: np.ndarray, seed: int = 0, resamples: int = RESAMPLES) -> dict[str, Any]:
    """Return {"mean", "interval": [lo, hi]} of `values` (n,), NaN ignored: the percentile bootstrap
    interval (CONFIDENCE) of the mean; None where no value is finite."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if not len(x):
        return {"mean": None, "interval": [None, None]}
    means = x[np.random.default_rng(seed).integers(0, len(x), (resamples, len(x)))].mean(1)
    tail = (1 - CONFIDENCE) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return {"mean": float(x.mean()), "interval": [float(lo), float(hi)]}


@dataclass
class Collected:
    """Per image with a box, over batches: box hits (n, F) per method, top-1 correctness, and the
    faithfulness scores (n, M) by name (`SCORES`), methods in `names` order."""

    names: list[str]
    hits: dict[str, list[np.ndarray]] = field(default_factory=lambda: defaultdict(list))
    class_ok: list[np.ndarray] = field(default_factory=list)
    scores: dict[str, list[np.ndarray]] = field(default_factory=lambda: defaultdict(list))

    def arrays(self) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]:
        """(hits by method (N, F), class_ok (N,), scores by name (N, M)), concatenated."""
        cat = np.concatenate
        return (
            {k: cat(v) for k, v in self.hits.items()},
            cat(self.class_ok),
            {k: cat(v) for k, v in self.scores.items()},
        )


def evaluate(
    lm: LoadedModel,
    source: ImageSource,
    settings: Settings,
    batch_size: int = 32,
    progress: Progress = no_progress,
    steps: int = 8,
    seed: int = 0,
) -> dict[str, Any]:
    """Held-out localization, mass in box, pointing and deletion / insertion AUC of every Eigen-CAM
    layer, rollout, Grad-CAM, a random map and a centre prior on a source with boxes (module doc).

    Returns `{"eigencam": {layer: report}, "rollout", "gradcam", "random", "centre": report,
    "best_layer", "best_layer_vs_random", "images", ...}` with `_method_report` reports.
    Images without a box (NaN) are skipped.
    """
    names = faithfulness.method_names(settings.layers, settings.rollout, settings.gradcam_layer is not None)
    got, correct, seen = Collected(names), 0, 0
    for batch in source.batches(batch_size, lm.input_geometry):
        keep = np.isfinite(batch.boxes).all(1)
        if keep.any():
            sub = Batch(batch.images[keep], batch.labels[keep], batch.boxes[keep], batch.indices[keep])
            ok = _score_batch(lm, sub, settings, steps, seed, got)
            correct, seen = correct + int(ok.sum()), seen + len(ok)
        progress(min(1.0, (batch.indices[-1] + 1) / len(source)), f"localization: {seen} images")
    if not seen:
        raise UserError("no image in the dataset has a ground-truth box: localization needs SynthScenes")
    return _report(got, settings, seen, correct, seed)


def _score_batch(
    lm: LoadedModel, batch: Batch, settings: Settings, steps: int, seed: int, got: Collected
) -> np.ndarray:
    """Add one batch's hits and scores to `got`; return whether each top-1 class is the label."""
    pixels = lm.preprocess(batch.images)
    maps = analyse_batch(lm, pixels, settings)
    grid = lm.layout_for((pixels.shape[-2], pixels.shape[-1])).grid
    chance = faithfulness.random_maps(batch.indices, grid[0] * grid[1], seed)
    stack = faithfulness.stacked_maps(maps, chance, grid).unflatten(-1, grid).cpu()
    size = (batch.images.shape[1], batch.images.shape[2])
    for m, name in enumerate(got.names):
        got.hits[name].append(box_hits(upsample(stack[:, m], size).numpy(), batch.boxes))
    found = faithfulness.batch_scores(lm, pixels, maps, batch, steps, seed)
    for name in SCORES:
        got.scores[name].append(found[name])
    ok = maps.logits.argmax(-1).cpu().numpy() == batch.labels
    got.class_ok.append(ok)
    return np.asarray(ok)


def _method_report(
    hits: np.ndarray,
    class_ok: np.ndarray,
    scores: dict[str, np.ndarray],
    split: tuple[np.ndarray, np.ndarray],
    seed: int,
) -> dict[str, Any]:
    """One method's held-out report: per score `{mean, interval}`, the calibration-chosen fractions."""
    calibration, held = split
    with_class = hits & class_ok[:, None]
    t, tc = choose_fraction(hits, calibration), choose_fraction(with_class, calibration)
    report: dict[str, Any] = {
        "threshold": FRACTIONS[t],
        "localization": bootstrap(hits[held, t], seed),
        "threshold_with_class": FRACTIONS[tc],
        "localization_with_class": bootstrap(with_class[held, tc], seed),
        f"at_{CUSTOMARY}": bootstrap(hits[held, FRACTIONS.index(CUSTOMARY)], seed),
        "calibration_curve": [float(v) for v in hits[calibration].mean(0)],
    }
    report |= {name: bootstrap(values[held], seed) for name, values in scores.items()}
    return report


def _report(got: Collected, settings: Settings, seen: int, correct: int, seed: int) -> dict[str, Any]:
    """Assemble the JSON report: every method's held-out report, the best layer against the random map."""
    hits, class_ok, scores = got.arrays()
    split = calibration_split(seen, seed=seed)
    per = {
        name: _method_report(hits[name], class_ok, {k: v[:, m] for k, v in scores.items()}, split, seed)
        for m, name in enumerate(got.names)
    }
    calibration, held = split

    def calibrated(layer: int) -> float:
        h = hits[f"eigencam/{layer}"]
        return float(h[calibration, choose_fraction(h, calibration)].mean())

    best_layer = max(settings.layers, key=calibrated)  # ties: the first layer
    report: dict[str, Any] = {
        "images": seen,
        "calibration_images": len(calibration),
        "held_out_images": len(held),
        "top1_accuracy": correct / seen,
        "fractions": list(FRACTIONS),
        "iou_min": IOU_MIN,
        "sign_rule": settings.sign_rule,
        "relu": settings.relu,
        "eigencam": {str(layer): per[f"eigencam/{layer}"] for layer in settings.layers},
        "best_layer": best_layer,
        "best_layer_localization": per[f"eigencam/{best_layer}"]["localization"],
        **{name: per[name] for name in got.names if not name.startswith("eigencam/")},
    }
    if "gradcam" in report:
        report["gradcam"]["layer"] = settings.gradcam_layer
    report["best_layer_vs_random"] = _versus(
        got.names, f"eigencam/{best_layer}", hits, scores, per, held, seed
    )
    return report


def _versus(
    names: list[str],
    best: str,
    hits: dict[str, np.ndarray],
    scores: dict[str, np.ndarray],
    per: dict[str, dict[str, Any]],
    held: np.ndarray,
    seed: int,
) -> dict[str, Any]:
    """The best layer minus the random map per held-out image, each metric at its own fraction:
    `{metric: {mean, interval, better}}` (`better`: the interval lies on the right side of 0), and
    whether it is better on every metric."""
    at = {name: FRACTIONS.index(per[name]["threshold"]) for name in (best, "random")}
    paired = {"localization": hits[best][held, at[best]].astype(float) - hits["random"][held, at["random"]]}
    b, r = names.index(best), names.index("random")
    paired |= {name: scores[name][held, b] - scores[name][held, r] for name in SCORES}
    out: dict[str, Any] = {}
    for name, diff in paired.items():
        est = bootstrap(diff, seed)
        sign = -1 if name in LOWER_IS_BETTER else 1
        est["better"] = est["mean"] is not None and min(sign * v for v in est["interval"]) > 0
        out[name] = est
    out["better_on_every_metric"] = all(v["better"] for v in out.values())
    return out
