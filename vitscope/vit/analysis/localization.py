"""Weakly-supervised localization: how well a saliency map finds the labelled object's box.

The protocol of Grad-CAM (Selvaraju et al., 2017), which Eigen-CAM compares against: the map,
upsampled to the image, is binarised at a fraction of its maximum (pixels >= fraction * max),
a box is drawn around the single largest connected region (8-connected, as OpenCV's contours
that the Grad-CAM code used), and the box is correct when its IoU with the ground-truth box is
at least 0.5, optionally also requiring the top-1 prediction to be the label. The fraction is
swept over 0.05..0.95; the best fraction and the customary 0.15 are reported. Boxes are
(x0, y0, x1, y1) pixels with x1, y1 exclusive, as SynthScenes gives them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from vitscope.contracts.errors import UserError
from vitscope.vit.analysis.base import Progress, no_progress
from vitscope.vit.analysis.eigencam import BatchMaps, Settings, analyse_batch, upsample
from vitscope.vit.data.inputs import ImageSource
from vitscope.vit.models import LoadedModel

FRACTIONS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))
CUSTOMARY = 0.15
IOU_MIN = 0.5
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


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


@dataclass
class Tally:
    """Hits of one method accumulated over batches: (N, F) per batch, and whether the class was right."""

    fractions: tuple[float, ...] = FRACTIONS
    hits: list[np.ndarray] = field(default_factory=list)
    class_ok: list[np.ndarray] = field(default_factory=list)

    def add(self, hits: np.ndarray, class_ok: np.ndarray) -> None:
        """Add a batch's hits (n, F) and top-1 correctness (n,)."""
        self.hits.append(hits)
        self.class_ok.append(class_ok)

    def report(self) -> dict[str, Any]:
        """Return accuracies: best over fractions, its fraction, at 0.15, each also with the class required."""
        hits = np.concatenate(self.hits)
        with_class = hits & np.concatenate(self.class_ok)[:, None]
        out: dict[str, Any] = {}
        for suffix, h in (("", hits), ("_with_class", with_class)):
            curve = h.mean(0)
            best = int(np.argmax(curve))  # ties go to the lowest fraction
            out[f"best{suffix}"] = float(curve[best])
            out[f"best{suffix}_threshold"] = self.fractions[best]
            out[f"at_{CUSTOMARY}{suffix}"] = float(curve[self.fractions.index(CUSTOMARY)])
            out[f"curve{suffix}"] = [float(v) for v in curve]
        return out


def _method_maps(maps: BatchMaps, settings: Settings) -> dict[str, torch.Tensor]:
    """Grid maps (B, rows, cols) of every method in a batch: `eigencam/<layer>`, `rollout`, `gradcam`."""
    out = {f"eigencam/{layer}": maps.eigen.cam[:, i] for i, layer in enumerate(settings.layers)}
    if maps.rollout is not None:
        out["rollout"] = maps.rollout
    if maps.gradcam is not None:
        out["gradcam"] = maps.gradcam
    return out


def evaluate(
    lm: LoadedModel,
    source: ImageSource,
    settings: Settings,
    batch_size: int = 32,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """Localization accuracy of Eigen-CAM per layer, rollout and Grad-CAM on a source with boxes.

    Returns `{"eigencam": {layer: report}, "rollout": report, "gradcam": report | layer,
    "best_layer", "images", "top1_accuracy", "fractions", "iou_min"}` with `Tally.report` reports.
    Images without a box (NaN) are skipped.
    """
    tallies: dict[str, Tally] = {}
    correct, seen = 0, 0
    for batch in source.batches(batch_size, lm.input_geometry):
        keep = np.isfinite(batch.boxes).all(1)
        if keep.any():
            maps = analyse_batch(lm, lm.preprocess(batch.images[keep]), settings)
            ok = maps.logits.argmax(-1).cpu().numpy() == batch.labels[keep]
            size = (batch.images.shape[1], batch.images.shape[2])
            for name, grid in _method_maps(maps, settings).items():
                hits = box_hits(upsample(grid.cpu(), size).numpy(), batch.boxes[keep])
                tallies.setdefault(name, Tally()).add(hits, ok)
            correct, seen = correct + int(ok.sum()), seen + int(keep.sum())
        progress(min(1.0, (batch.indices[-1] + 1) / len(source)), f"localization: {seen} images")
    if not seen:
        raise UserError("no image in the dataset has a ground-truth box: localization needs SynthScenes")
    return _report(tallies, settings, seen, correct)


def _report(tallies: dict[str, Tally], settings: Settings, seen: int, correct: int) -> dict[str, Any]:
    """Assemble the JSON report from the per-method tallies."""
    eigen = {str(layer): tallies[f"eigencam/{layer}"].report() for layer in settings.layers}
    best_layer = max(settings.layers, key=lambda layer: eigen[str(layer)]["best"])
    report: dict[str, Any] = {
        "images": seen,
        "top1_accuracy": correct / seen,
        "fractions": list(FRACTIONS),
        "iou_min": IOU_MIN,
        "sign_rule": settings.sign_rule,
        "relu": settings.relu,
        "eigencam": eigen,
        "best_layer": best_layer,
        "best_layer_accuracy": eigen[str(best_layer)]["best"],
    }
    if "rollout" in tallies:
        report["rollout"] = tallies["rollout"].report()
    if "gradcam" in tallies:
        report["gradcam"] = {**tallies["gradcam"].report(), "layer": settings.gradcam_layer}
    return report
