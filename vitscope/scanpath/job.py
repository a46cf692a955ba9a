"""The `scanpath` job kind: OAT scanpaths on built-in search scenes or on an uploaded scene.

Inputs are either `synthsearch:N[:seed=S][:layout=...]` (objects and targets known) or one
uploaded image, whose objects come from `params.boxes` or, when none are given, from
proposals read off the ViT (`vitscope.scanpath.proposals`); `params.target` picks the target
(the first object when omitted). The shipped OAT checkpoint predicts a greedy scanpath with
per-step probabilities, and `params.samples` sampled scanpaths give a fixation density.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vitscope.contracts.datasets import parse_dataset_spec
from vitscope.contracts.errors import UserError
from vitscope.contracts.jobs import Inputs
from vitscope.contracts.kinds.scanpath import ScanpathParams
from vitscope.scanpath import SHIPPED_CHECKPOINT
from vitscope.scanpath.batching import collate_trials, trial_tensors
from vitscope.scanpath.metrics import behaviour_stats, mean_behaviour
from vitscope.scanpath.model import OAT, greedy, load_checkpoint, sample
from vitscope.scanpath.proposals import object_features, propose_boxes
from vitscope.scanpath.trials import Trial, grid_cells, trial_from_scene
from vitscope.vit.analysis.base import AnalysisResult, Progress
from vitscope.vit.data.inputs import decode_image
from vitscope.vit.data.synthscenes import SynthSearch
from vitscope.vit.models import LoadedModel

MAX_STORED_IMAGES = 16
MAX_SAMPLED_SEQUENCES = 1000  # per job: bounds the cost of densities over many scenes on a CPU


@dataclass
class SearchSource:
    """Scenes to search: generated SynthSearch scenes, or uploaded images without objects yet."""

    scenes: SynthSearch | None = None
    images: Sequence[Callable[[], np.ndarray]] = ()

    def __len__(self) -> int:
        return len(self.scenes) if self.scenes is not None else len(self.images)


def open_source(inputs: Inputs, fetch: Callable[[str], bytes], _class_names: Sequence[str]) -> SearchSource:
    """The scenes of a scanpath job: `synthsearch:...` or uploaded image ids."""
    if inputs.dataset is not None:
        spec = parse_dataset_spec(inputs.dataset)
        if spec.name != "synthsearch":
            raise UserError(
                "scanpaths need search scenes: use synthsearch:N[:seed=S][:layout=grid:RxC] or an image"
            )
        return SearchSource(scenes=SynthSearch(spec.n, seed=spec.seed, layout=spec.layout))
    if inputs.images is None:
        raise UserError("scanpaths run on synthsearch scenes or uploaded images, not on a zip")
    return SearchSource(images=[_loader(fetch, image_id) for image_id in inputs.images])


def _loader(fetch: Callable[[str], bytes], image_id: str) -> Callable[[], np.ndarray]:
    return lambda: decode_image(fetch(image_id), None, image_id)


@lru_cache(maxsize=2)
def shipped_model(folder: Path = SHIPPED_CHECKPOINT, device: str = "cpu") -> OAT:
    """The OAT checkpoint, loaded once per process and device."""
    return load_checkpoint(folder, device)


def run(lm: LoadedModel, source: SearchSource, params: ScanpathParams, progress: Progress) -> AnalysisResult:
    """Greedy scanpaths with probabilities, sampled fixation densities and behavioural statistics.

    Arrays (S scenes, N objects, K longest scanpath): `boxes` (S, N, 4), `scanpath` (S, K) with
    -1 after the end, `probabilities` (S, K), `density` (S, N), `targets` (S,), `image`
    (S, H, W, 3) when S <= 16. A single uploaded scene drops the leading axis.
    """
    model = shipped_model(SHIPPED_CHECKPOINT, str(lm.device))
    trials = _trials(lm, source, params, model)
    progress(0.2, f"{len(trials)} scenes")
    paths, probs, density = _predict(model, trials, params)
    progress(0.9, "scored")
    return _result(trials, paths, probs, density, single=source.scenes is None)


def _trials(lm: LoadedModel, source: SearchSource, params: ScanpathParams, model: OAT) -> list[Trial]:
    if source.scenes is not None:
        trials = [trial_from_scene(scene, f"scene-{i}") for i, scene in enumerate(source.scenes)]
        if params.target is not None:  # the user picked another target than the generator's
            trials = [replace(t, target=_checked_target(params.target, t.n)) for t in trials]
    else:
        trials = [_uploaded_trial(lm, load(), params) for load in source.images]
    if model.config.appearance == "vit":
        trials = [replace(t, features=object_features(lm, _image(t), t.boxes)) for t in trials]
    return trials


def _image(trial: Trial) -> np.ndarray:
    assert trial.image is not None
    return trial.image


def _uploaded_trial(lm: LoadedModel, image: np.ndarray, params: ScanpathParams) -> Trial:
    """A trial on an uploaded scene: the given boxes, or the ViT's proposals."""
    boxes = (
        np.asarray(params.boxes, dtype=np.float64)
        if params.boxes
        else propose_boxes(lm, image, seed=params.seed)
    )
    if len(boxes) == 0:
        raise UserError("no objects: the model proposed none in this image; draw boxes and run again")
    target = 0 if params.target is None else params.target
    if not 0 <= target < len(boxes):
        raise UserError(
            f"target {target} is out of range: the scene has {len(boxes)} objects (0..{len(boxes) - 1})"
        )
    h, w = image.shape[:2]
    cells, grid = grid_cells(boxes, None)
    return Trial(boxes=boxes, cells=cells, grid=grid, target=target, image_size=(h, w), image=image)


def _checked_target(target: int, n: int) -> int:
    if not 0 <= target < n:
        raise UserError(f"target {target} is out of range: the scene has {n} objects (0..{n - 1})")
    return target


def _predict(
    model: OAT, trials: list[Trial], params: ScanpathParams
) -> tuple[list[list[int]], list[list[float]], list[np.ndarray]]:
    """The shown scanpath per scene with its step probabilities, and fixation densities.

    The shown scanpath is the first sampled one, or the greedy one with `decoding="greedy"`:
    greedy decoding tends to repeat refixations, while samples reproduce human statistics.
    """
    device = next(model.parameters()).device
    x = collate_trials([trial_tensors(t, model.config) for t in trials]).to(device)
    per_scene = max(1, min(params.samples, MAX_SAMPLED_SEQUENCES // len(trials)))
    with torch.no_grad():
        gen = torch.Generator(device=device).manual_seed(params.seed)
        sampled = sample(model, x, per_scene, generator=gen, max_len=params.max_length)
        shown = greedy(model, x, max_len=params.max_length) if params.decoding == "greedy" else sampled
    paths = [p[0] for p in shown.scanpaths()]
    probs = [shown.chosen_prob[i, 0, : len(p)].float().cpu().tolist() for i, p in enumerate(paths)]
    density = [_density(s, t.n) for s, t in zip(sampled.scanpaths(), trials, strict=True)]
    return paths, probs, density


def _density(samples: list[list[int]], n: int) -> np.ndarray:
    """Fraction of the sampled scanpaths that fixate each object at least once, (N,)."""
    hits = np.zeros(n)
    for path in samples:
        hits[list(set(path))] += 1
    return hits / max(1, len(samples))


def _result(
    trials: list[Trial],
    paths: list[list[int]],
    probs: list[list[float]],
    density: list[np.ndarray],
    single: bool,
) -> AnalysisResult:
    k = max(1, max(len(p) for p in paths))
    n = max(t.n for t in trials)
    result = AnalysisResult()
    result.add("boxes", np.stack([_pad_rows(t.boxes, n) for t in trials]))
    result.add("scanpath", np.asarray([p + [-1] * (k - len(p)) for p in paths], dtype=np.int64))
    result.add("probabilities", np.asarray([q + [0.0] * (k - len(q)) for q in probs], dtype=np.float32))
    result.add("density", np.stack([np.pad(d, (0, n - len(d))) for d in density]))
    result.add("targets", np.asarray([t.target for t in trials], dtype=np.int64))
    if len(trials) <= MAX_STORED_IMAGES and all(t.image is not None for t in trials):
        result.add("image", np.stack([_image(t) for t in trials]))
    if single:
        result.arrays = {name: a[0] for name, a in result.arrays.items()}
    result.summary = _summary(trials, paths, probs)
    return result


def _pad_rows(boxes: np.ndarray, n: int) -> np.ndarray:
    return np.concatenate([boxes, np.full((n - len(boxes), 4), np.nan)]) if len(boxes) < n else boxes


def _summary(trials: list[Trial], paths: list[list[int]], probs: list[list[float]]) -> dict[str, Any]:
    targets = [t.target for t in trials]
    return {
        "scenes": len(trials),
        "target": targets,
        "grid": list(trials[0].grid),
        "scanpaths": [
            {"scanpath": p, "target": t, "probabilities": q, **behaviour_stats(p, t).as_dict()}
            for p, t, q in zip(paths, targets, probs, strict=True)
        ],
        "behaviour": mean_behaviour(paths, targets).as_dict(),
    }
