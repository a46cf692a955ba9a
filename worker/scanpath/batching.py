"""Trials and scanpaths as model tensors: one trial converted once, batches padded on collate.

Crops stay uint8 until the model (4× less memory than float); scenes with different
numbers of objects are padded to the batch's largest N with `object_mask` False.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from vitscope.errors import UserError
from worker.scanpath.model import OATConfig, SceneInputs
from worker.scanpath.trials import Trial, object_crops, target_crop


@dataclass(frozen=True, eq=False)
class TrialTensors:
    """One trial for the model: `appearance` (N, 3, h, w) uint8 or (N, F) float32;
    `target_appearance` (3, h, w) or (F,); `cells` (N, 2) long; `target`; `grid` (rows, cols)."""

    appearance: Tensor
    target_appearance: Tensor
    cells: Tensor
    target: int
    grid: tuple[int, int]


def trial_tensors(trial: Trial, config: OATConfig) -> TrialTensors:
    """Convert a trial for a model with `config` (crops resampled to its crop size)."""
    if config.appearance == "vit":
        if trial.features is None or trial.features.shape[1] != config.feature_dim:
            got = None if trial.features is None else trial.features.shape
            raise UserError(
                f"trial {trial.trial_id!r}: the model reads per-object features of size "
                f"{config.feature_dim}, the trial has {got}"
            )
        feats = torch.as_tensor(np.asarray(trial.features, np.float32))
        app, tgt = feats, feats[trial.target]
    else:
        app = torch.from_numpy(object_crops(trial, config.crop_size)).permute(0, 3, 1, 2).contiguous()
        tgt = torch.from_numpy(target_crop(trial, config.crop_size)).permute(2, 0, 1).contiguous()
    cells = torch.as_tensor(np.asarray(trial.cells), dtype=torch.long)
    return TrialTensors(app, tgt, cells, trial.target, trial.grid)


def collate_trials(items: Sequence[TrialTensors]) -> SceneInputs:
    """Stack trials into a `SceneInputs` batch, padding objects to the largest N."""
    n = max(len(t.cells) for t in items)
    b = len(items)
    first = items[0].appearance
    appearance = first.new_zeros((b, n, *first.shape[1:]))
    cells = torch.zeros(b, n, 2, dtype=torch.long)
    mask = torch.zeros(b, n, dtype=torch.bool)
    for k, t in enumerate(items):
        m = len(t.cells)
        appearance[k, :m], cells[k, :m], mask[k, :m] = t.appearance, t.cells, True
    return SceneInputs(
        appearance=appearance,
        target_appearance=torch.stack([t.target_appearance for t in items]),
        rows=cells[..., 0],
        cols=cells[..., 1],
        object_mask=mask,
        target=torch.tensor([t.target for t in items], dtype=torch.long),
        grid=torch.tensor([t.grid for t in items], dtype=torch.long),
    )


def pad_paths(paths: Sequence[Sequence[int]], max_len: int | None = None) -> Tensor:
    """Scanpaths as (B, L) long, −1 after each end; paths longer than `max_len` are cut."""
    cut = [list(p)[:max_len] if max_len else list(p) for p in paths]
    out = torch.full((len(cut), max(len(p) for p in cut)), -1, dtype=torch.long)
    for k, p in enumerate(cut):
        out[k, : len(p)] = torch.as_tensor(p, dtype=torch.long)
    return out
