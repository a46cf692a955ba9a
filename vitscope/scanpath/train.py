"""Train OAT on (trial, scanpath) records: teacher forcing, early stopping on behavioural Δ.

As published (PAPERS.md §3): cross-entropy over the next object with ignore_index = PAD,
Adam lr 1e-4, batch 20, gradient clipping 1.0, early stopping on the validation behavioural
Δ with a patience. Per epoch one log line: epoch, train loss, val loss, val sequence score
(greedy vs every reference scanpath of the trial) and val Δ (of `val_samples` sampled
scanpaths per trial against the trial's reference scanpaths).

Checkpoints are `config.json` + `model.safetensors` (`model.save_checkpoint`), never pickle;
`load_checkpoint(folder)` returns a model ready for inference. Device-agnostic: "auto" picks
CUDA when available; bf16 autocast is optional.

Speed: every trial is converted once into tensors that stay on the training device
(`RecordBank`), so a training step indexes device tensors instead of collating crops on the
host and copying them over; batch losses are read back once per epoch, so no step waits for
the device. The shuffling reproduces the `DataLoader` this replaced, batch for batch.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vitscope.contracts.errors import UserError
from vitscope.scanpath.batching import SceneBank, pad_paths
from vitscope.scanpath.datasets import group_by_trial
from vitscope.scanpath.evaluate import predict_scanpaths
from vitscope.scanpath.metrics import BehaviourStats, behaviour_delta, mean_behaviour, sequence_scores
from vitscope.scanpath.model import (
    OAT,
    OATConfig,
    SceneInputs,
    load_checkpoint,
    loss_targets,
    save_checkpoint,
    scanpath_loss,
)
from vitscope.scanpath.trials import ScanpathRecord, Trial

__all__ = ["EpochLog", "RecordBank", "TrainConfig", "TrainResult", "load_checkpoint", "train_model"]
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


@dataclass(frozen=True)
class RecordBank:
    """Scanpath records as tensors on the training device, converted once.

    `scenes` holds each distinct trial once (first-seen order); per record, `scene` (R,) long
    indexes it and `fixations` (R, L) long are the scanpath padded with −1 and cut at the
    model's max_len. `host_scene` and `lengths` (R,) are host copies, so a batch is trimmed to
    its own largest N and L, as `collate_trials` and `pad_paths` trim, without a device sync.
    """

    scenes: SceneBank
    scene: torch.Tensor
    fixations: torch.Tensor
    host_scene: np.ndarray
    lengths: np.ndarray

    @classmethod
    def from_records(
        cls, records: Sequence[ScanpathRecord], config: OATConfig, device: torch.device
    ) -> RecordBank:
        """Convert records (trials shared between records are converted once)."""
        if not records:
            raise UserError("no scanpath records to train on")
        index: dict[int, int] = {}
        trials: list[Trial] = []
        for r in records:
            if id(r.trial) not in index:
                index[id(r.trial)] = len(trials)
                trials.append(r.trial)
        scenes = SceneBank.from_trials(trials, config, device)
        host_scene = np.array([index[id(r.trial)] for r in records], dtype=np.int64)
        paths = [r.scanpath[: config.max_len] for r in records]
        return cls(
            scenes,
            torch.as_tensor(host_scene, device=device),
            pad_paths(paths).to(device),
            host_scene,
            np.array([len(p) for p in paths], dtype=np.int64),
        )

    def __len__(self) -> int:
        return len(self.host_scene)

    def batch(self, index: torch.Tensor, host_index: np.ndarray) -> tuple[SceneInputs, torch.Tensor]:
        """The scenes and fixations (B, L) of the records at `index` (device) = `host_index`."""
        x = self.scenes.take(self.scene.index_select(0, index), self.host_scene[host_index])
        return x, self.fixations.narrow(1, 0, int(self.lengths[host_index].max())).index_select(0, index)

    def batches(self, order: torch.Tensor, batch_size: int) -> Iterator[tuple[SceneInputs, torch.Tensor]]:
        """Batches in `order` (a permutation on the host): one copy of it to the device, then
        every batch is a slice of device tensors."""
        on_device, host = order.to(self.scene.device), order.numpy()
        for start in range(0, len(host), batch_size):
            stop = start + batch_size
            yield self.batch(on_device[start:stop], host[start:stop])


def epoch_order(n: int, generator: torch.Generator) -> torch.Tensor:
    """The order of n records in one shuffled epoch, drawn from `generator` exactly as
    `DataLoader(shuffle=True, generator=generator)` draws it (a worker base seed, the
    permutation, and one more permutation when its sampler runs out), so the batches are
    those of the loader this replaced."""
    torch.empty((), dtype=torch.int64).random_(generator=generator)
    order = torch.randperm(n, generator=generator)
    torch.randperm(n, generator=generator)
    return order


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


def train_epoch(
    model: OAT,
    data: RecordBank,
    order: torch.Tensor,
    opt: torch.optim.Optimizer,
    cfg: TrainConfig,
    step_budget: list[int],
) -> float:
    """One pass of teacher-forced training over `data` in `order`; returns the mean batch loss.

    `step_budget` is a one-item list of remaining optimiser steps (decremented; < 0: none).
    The batch losses stay on the device until the end of the epoch: no step waits for it.
    """
    model.train()
    device = data.scene.device
    losses = []
    batches = data.batches(order, cfg.batch_size)
    total = -(-len(order) // cfg.batch_size)
    for x, fix in tqdm(batches, desc="train", total=total, leave=False, disable=not cfg.progress):
        if step_budget[0] == 0:
            break
        with _autocast(device, cfg.bf16):
            loss = scanpath_loss(model(x, fix), loss_targets(fix, x.n_objects))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        losses.append(loss.detach())
        step_budget[0] -= 1
    return _mean(losses)


def _mean(losses: list[torch.Tensor]) -> float:
    """Mean of scalar losses as float64 (the same number as np.mean of their .item()s)."""
    return float(np.mean(torch.stack(losses).double().cpu().numpy())) if losses else math.nan


@torch.no_grad()
def validation_loss(model: OAT, data: RecordBank, batch_size: int, bf16: bool = False) -> float:
    """Mean teacher-forced batch loss over records in order (model in eval mode)."""
    model.eval()
    device = data.scene.device
    losses = []
    for x, fix in data.batches(torch.arange(len(data)), batch_size):
        with _autocast(device, bf16):
            losses.append(scanpath_loss(model(x, fix), loss_targets(fix, x.n_objects)))
    return _mean(losses)


@dataclass(frozen=True)
class ValidationSet:
    """Validation records on the device, and per trial (`records.scenes` order) its target and
    reference scanpaths, with their mean behaviour."""

    records: RecordBank
    targets: list[int]
    refs: list[list[list[int]]]
    reference: BehaviourStats


def validation_set(
    records: Sequence[ScanpathRecord], config: OATConfig, device: torch.device
) -> ValidationSet:
    """Prepare validation records (tensors converted once, kept on `device`)."""
    groups = group_by_trial(records)
    targets = [t.target for t, _ in groups]
    refs = [[list(p) for p in paths] for _, paths in groups]
    reference = mean_behaviour(
        [r for rs in refs for r in rs], [targets[i] for i, rs in enumerate(refs) for _ in rs]
    )
    return ValidationSet(RecordBank.from_records(records, config, device), targets, refs, reference)


def validate(model: OAT, val: ValidationSet, cfg: TrainConfig) -> tuple[float, float, float]:
    """Return (val loss, val sequence score of greedy decoding, val Δ of sampled decoding)."""
    loss = validation_loss(model, val.records, cfg.batch_size, cfg.bf16)
    scenes = val.records.scenes
    gen = torch.Generator(device=scenes.inputs.rows.device).manual_seed(cfg.seed)
    greedy_paths, sampled = predict_scanpaths(model, scenes, cfg.val_samples, gen)
    pairs = [(g[0], r) for g, rs in zip(greedy_paths, val.refs, strict=True) for r in rs]
    ss = float(np.mean(sequence_scores([p for p, _ in pairs], [r for _, r in pairs])))
    stats = mean_behaviour(
        [p for ps in sampled for p in ps], [val.targets[i] for i, ps in enumerate(sampled) for _ in ps]
    )
    return loss, ss, behaviour_delta(stats, val.reference)


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
    data = RecordBank.from_records(train_records, model.config, device)
    val = validation_set(val_records, model.config, device) if val_records else None
    shuffle = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    result, stale, start = TrainResult(model), 0, time.perf_counter()
    budget = [cfg.max_steps if cfg.max_steps is not None else -1]
    best_state: dict[str, torch.Tensor] = {}
    for epoch in range(1, cfg.epochs + 1):
        train_loss = train_epoch(model, data, epoch_order(len(data), shuffle), opt, cfg, budget)
        entry = EpochLog(epoch, train_loss, *(validate(model, val, cfg) if val else (math.nan,) * 3))
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
