"""Train OAT on (trial, scanpath) records: teacher forcing, early stopping on behavioural Δ.

As published (PAPERS.md §3): cross-entropy over the next object with ignore_index = PAD,
Adam lr 1e-4, batch 20, gradient clipping 1.0, early stopping on the validation behavioural
Δ with a patience. Per epoch one log line: epoch, train loss, val loss, val sequence score
(greedy vs every reference scanpath of the trial) and val Δ (of `val_samples` sampled
scanpaths per trial against the trial's reference scanpaths).

Checkpoints are `config.json` + `model.safetensors` (`model.save_checkpoint`), never pickle;
`load_checkpoint(folder)` returns a model ready for inference. Device-agnostic: "auto" picks
CUDA when available; bf16 autocast is optional.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from vitscope.errors import UserError
from worker.scanpath.batching import TrialTensors, collate_trials, pad_paths, trial_tensors
from worker.scanpath.datasets import group_by_trial
from worker.scanpath.evaluate import predict_scanpaths, reference_behaviour
from worker.scanpath.metrics import behaviour_delta, mean_behaviour, sequence_scores
from worker.scanpath.model import (
    OAT,
    SceneInputs,
    load_checkpoint,
    loss_targets,
    save_checkpoint,
    scanpath_loss,
)
from worker.scanpath.trials import ScanpathRecord, Trial

__all__ = ["EpochLog", "ScanpathDataset", "TrainConfig", "TrainResult", "load_checkpoint", "train_model"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; defaults as published except `epochs` (500 there)."""

    epochs: int = 100
    batch_size: int = 20
    lr: float = 1e-4
    grad_clip: float = 1.0
    patience: int = 30
    seed: int = 1234
    device: str = "auto"
    bf16: bool = False
    val_samples: int = 10
    max_steps: int | None = None
    progress: bool = True


@dataclass(frozen=True)
class EpochLog:
    """One epoch's numbers (val_* are NaN without a validation set)."""

    epoch: int
    train_loss: float
    val_loss: float
    val_ss: float
    val_delta: float


@dataclass
class TrainResult:
    """The trained model (best validation Δ restored), the history and the best epoch."""

    model: OAT
    history: list[EpochLog] = field(default_factory=list)
    best_epoch: int = 0
    best_delta: float = math.inf
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (NaN and infinities, e.g. without validation, become None)."""
        return {
            "best_epoch": self.best_epoch,
            "best_val_delta": _json_number(self.best_delta),
            "seconds": round(self.seconds, 1),
            "history": [{k: _json_number(v) for k, v in asdict(h).items()} for h in self.history],
        }


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


class ScanpathDataset(Dataset[tuple[TrialTensors, tuple[int, ...]]]):
    """(trial tensors, scanpath) pairs; each distinct trial is converted once and shared."""

    def __init__(self, records: Sequence[ScanpathRecord], model: OAT) -> None:
        if not records:
            raise UserError("no scanpath records to train on")
        self.records = list(records)
        self.tensors: dict[int, TrialTensors] = {}
        for r in self.records:
            if id(r.trial) not in self.tensors:
                self.tensors[id(r.trial)] = trial_tensors(r.trial, model.config)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[TrialTensors, tuple[int, ...]]:
        r = self.records[i]
        return self.tensors[id(r.trial)], r.scanpath


def collate(
    items: Sequence[tuple[TrialTensors, tuple[int, ...]]], max_len: int
) -> tuple[SceneInputs, torch.Tensor]:
    """Batch of (scenes, fixations (B, L) long padded with −1, cut at `max_len`)."""
    return collate_trials([t for t, _ in items]), pad_paths([p for _, p in items], max_len)


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available else CPU; otherwise the named device (UserError if absent)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for but CUDA is not available; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise UserError(f"unknown device {name!r}: use auto, cpu or cuda[:N]") from exc


def _autocast(device: torch.device, bf16: bool) -> Any:
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


def _loader(data: ScanpathDataset, cfg: TrainConfig, shuffle: bool, max_len: int) -> DataLoader[Any]:
    gen = torch.Generator().manual_seed(cfg.seed)
    return DataLoader(
        data,
        batch_size=cfg.batch_size,
        shuffle=shuffle,
        generator=gen,
        collate_fn=lambda items: collate(items, max_len),
    )


def train_epoch(
    model: OAT,
    loader: DataLoader[Any],
    opt: torch.optim.Optimizer,
    cfg: TrainConfig,
    device: torch.device,
    step_budget: list[int],
) -> float:
    """One pass of teacher-forced training; returns the mean batch loss.

    `step_budget` is a one-item list of remaining optimiser steps (decremented; < 0: none).
    """
    model.train()
    losses = []
    for x, fix in tqdm(loader, desc="train", leave=False, disable=not cfg.progress):
        if step_budget[0] == 0:
            break
        x, fix = x.to(device), fix.to(device)
        with _autocast(device, cfg.bf16):
            loss = scanpath_loss(model(x, fix), loss_targets(fix, x.n_objects))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        losses.append(loss.item())
        step_budget[0] -= 1
    return float(np.mean(losses)) if losses else math.nan


@torch.no_grad()
def validation_loss(model: OAT, loader: DataLoader[Any], device: torch.device, bf16: bool = False) -> float:
    """Mean teacher-forced loss over a loader (model in eval mode)."""
    model.eval()
    losses = []
    for x, fix in loader:
        x, fix = x.to(device), fix.to(device)
        with _autocast(device, bf16):
            losses.append(float(scanpath_loss(model(x, fix), loss_targets(fix, x.n_objects))))
    return float(np.mean(losses))


@dataclass(frozen=True)
class ValidationSet:
    """Validation records as loaders and per-trial references for the decoding metrics."""

    loader: DataLoader[Any]
    trials: list[Trial]
    tensors: list[TrialTensors]
    refs: list[list[list[int]]]


def validation_set(records: Sequence[ScanpathRecord], model: OAT, cfg: TrainConfig) -> ValidationSet:
    """Prepare validation records (tensors converted once)."""
    data = ScanpathDataset(records, model)
    groups = group_by_trial(records)
    tensors = [data.tensors[id(t)] for t, _ in groups]
    refs = [[list(p) for p in paths] for _, paths in groups]
    return ValidationSet(
        _loader(data, cfg, False, model.config.max_len), [t for t, _ in groups], tensors, refs
    )


def validate(
    model: OAT, val: ValidationSet, cfg: TrainConfig, device: torch.device
) -> tuple[float, float, float]:
    """Return (val loss, val sequence score of greedy decoding, val Δ of sampled decoding)."""
    loss = validation_loss(model, val.loader, device, cfg.bf16)
    greedy_paths = predict_scanpaths(model, val.tensors)
    pairs = [(g[0], r) for g, rs in zip(greedy_paths, val.refs, strict=True) for r in rs]
    ss = float(np.mean(sequence_scores([p for p, _ in pairs], [r for _, r in pairs])))
    sampled = predict_scanpaths(model, val.tensors, samples=cfg.val_samples, seed=cfg.seed)
    targets = [t.target for t in val.trials]
    stats = mean_behaviour(
        [p for ps in sampled for p in ps], [targets[i] for i, ps in enumerate(sampled) for _ in ps]
    )
    return loss, ss, behaviour_delta(stats, reference_behaviour(val.trials, val.refs))


def train_model(
    model: OAT,
    train_records: Sequence[ScanpathRecord],
    val_records: Sequence[ScanpathRecord] = (),
    cfg: TrainConfig | None = None,
    out: Path | None = None,
    on_epoch: Callable[[EpochLog], None] | None = None,
) -> TrainResult:
    """Train `model`; keep the weights of the best validation Δ (the last epoch without a
    validation set); save them to `out` at each improvement. Returns a `TrainResult`."""
    cfg = cfg or TrainConfig()
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    model.to(device)
    loader = _loader(ScanpathDataset(train_records, model), cfg, True, model.config.max_len)
    val = validation_set(val_records, model, cfg) if val_records else None
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    result, stale, start = TrainResult(model), 0, time.perf_counter()
    budget = [cfg.max_steps if cfg.max_steps is not None else -1]
    best_state: dict[str, torch.Tensor] = {}
    for epoch in range(1, cfg.epochs + 1):
        train_loss = train_epoch(model, loader, opt, cfg, device, budget)
        entry = EpochLog(epoch, train_loss, *(validate(model, val, cfg, device) if val else (math.nan,) * 3))
        result.history.append(entry)
        log.info(
            "epoch %d  train loss %.4f  val loss %.4f  val SS %.4f  val delta %.4f", *asdict(entry).values()
        )
        if on_epoch:
            on_epoch(entry)
        if val is None or entry.val_delta < result.best_delta:
            result.best_epoch, result.best_delta, stale = epoch, entry.val_delta, 0
            best_state = _keep_best(model, cfg, entry, out)
        else:
            stale += 1
        if stale >= cfg.patience or budget[0] == 0:
            break
    model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - start
    return result


def _keep_best(model: OAT, cfg: TrainConfig, entry: EpochLog, out: Path | None) -> dict[str, torch.Tensor]:
    """A CPU copy of the weights; also saved to `out` with the training settings."""
    if out is not None:
        save_checkpoint(model, out, {"training": {**asdict(cfg), **asdict(entry)}})
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
