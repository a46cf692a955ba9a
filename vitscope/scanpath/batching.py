"""Trials and scanpaths as model tensors: one trial converted once, batches padded on collate.

Crops stay uint8 until the model (4× less memory than float); scenes with different
numbers of objects are padded to the batch's largest N with `object_mask` False.

`SceneBank` stacks many trials once on the model's device, so a batch is an index into
device tensors (no per-step collation or host-to-device copy); its batches are padded to
their own largest N, exactly as `collate_trials` pads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from vitscope.contracts.errors import UserError
from vitscope.scanpath.model import OATConfig, SceneInputs, check_cells
from vitscope.scanpath.trials import Trial, object_crops, target_crop


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
    check_cells(cells, config)
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


@dataclass(frozen=True)
class SceneBank:
    """T trials as one `SceneInputs` (T, N_max, ...) on one device, and each trial's number of
    objects `n_objects` (T,) on the host, so batches are trimmed without a device sync."""

    inputs: SceneInputs
    n_objects: np.ndarray

    def __len__(self) -> int:
        return len(self.n_objects)

    @classmethod
    def from_trials(
        cls, trials: Sequence[Trial], config: OATConfig, device: torch.device | str = "cpu"
    ) -> SceneBank:
        """Convert trials one at a time into tensors allocated on `device` (host memory stays
        one trial's worth)."""
        first = trial_tensors(trials[0], config)
        counts = np.array([t.n for t in trials], dtype=np.int64)
        bank = _empty_inputs(first, len(trials), int(counts.max()), device)
        for k, trial in enumerate(trials):
            _fill(bank, k, first if k == 0 else trial_tensors(trial, config), device)
        return cls(bank, counts)

    def take(self, index: Tensor | slice, host_index: np.ndarray | slice | None = None) -> SceneInputs:
        """The scenes at `index` (a device tensor or a slice), padded to their largest N;
        `host_index` is the same selection on the host (default: `index` when a slice)."""
        host = index if host_index is None else host_index
        if isinstance(host, Tensor):
            raise TypeError("a tensor index needs its host_index")
        n = int(self.n_objects[host].max())

        def pick(t: Tensor, objects: bool = False) -> Tensor:
            t = t.narrow(1, 0, n) if objects else t
            # index_select copies whole rows: several times faster than advanced indexing
            return t[index] if isinstance(index, slice) else t.index_select(0, index)

        x = self.inputs
        return SceneInputs(
            appearance=pick(x.appearance, True),
            target_appearance=pick(x.target_appearance),
            rows=pick(x.rows, True),
            cols=pick(x.cols, True),
            object_mask=pick(x.object_mask, True),
            target=pick(x.target),
            grid=pick(x.grid),
        )


def _empty_inputs(first: TrialTensors, t: int, n: int, device: torch.device | str) -> SceneInputs:
    app, tgt = first.appearance, first.target_appearance
    return SceneInputs(
        appearance=torch.zeros((t, n, *app.shape[1:]), dtype=app.dtype, device=device),
        target_appearance=torch.zeros((t, *tgt.shape), dtype=tgt.dtype, device=device),
        rows=torch.zeros(t, n, dtype=torch.long, device=device),
        cols=torch.zeros(t, n, dtype=torch.long, device=device),
        object_mask=torch.zeros(t, n, dtype=torch.bool, device=device),
        target=torch.zeros(t, dtype=torch.long, device=device),
        grid=torch.zeros(t, 2, dtype=torch.long, device=device),
    )


def _fill(bank: SceneInputs, k: int, t: TrialTensors, device: torch.device | str) -> None:
    m = len(t.cells)
    bank.appearance[k, :m] = t.appearance.to(device)
    bank.target_appearance[k] = t.target_appearance.to(device)
    cells = t.cells.to(device)
    bank.rows[k, :m], bank.cols[k, :m], bank.object_mask[k, :m] = cells[:, 0], cells[:, 1], True
    bank.target[k] = t.target
    bank.grid[k] = torch.tensor(t.grid)


def pad_paths(paths: Sequence[Sequence[int]], max_len: int | None = None) -> Tensor:
    """Scanpaths as (B, L) long, −1 after each end; paths longer than `max_len` are cut."""
    cut = [list(p)[:max_len] if max_len else list(p) for p in paths]
    out = torch.full((len(cut), max(len(p) for p in cut)), -1, dtype=torch.long)
    for k, p in enumerate(cut):
        out[k, : len(p)] = torch.as_tensor(p, dtype=torch.long)
    return out
