"""Evaluate scanpath predictors against reference scanpaths, OAT-style.

For each trial a method predicts one or more scanpaths (OAT greedy: 1, OAT sampled: S,
random and simulator: S, nearest and similarity: 1 because they are deterministic). Every
(prediction, reference) pair of a trial is scored; scores are averaged per trial, then over
trials. Behavioural statistics are averaged over all predicted scanpaths and compared with
those of all reference scanpaths (Δ). The baselines' length cap is the rounded mean
reference length. Sampling is seeded: the same call gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from worker.scanpath.baselines import DETERMINISTIC, STOCHASTIC, Baseline
from worker.scanpath.batching import TrialTensors, collate_trials, trial_tensors
from worker.scanpath.metrics import (
    MM_KEYS,
    BehaviourStats,
    behaviour_delta,
    mean_behaviour,
    multimatch_scores,
    sequence_scores,
)
from worker.scanpath.model import OAT, greedy, sample
from worker.scanpath.simulator import geometry, subject_rng
from worker.scanpath.trials import Trial

Paths = list[list[list[int]]]
"""Scanpaths per trial: paths[trial][k] = object indices."""

BASELINE_SUBJECT_OFFSET = 1000  # simulator-baseline streams never coincide with reference subjects


@dataclass(frozen=True)
class MethodScores:
    """One method's scores: sequence score, MultiMatch similarities, behaviour and Δ."""

    sequence_score: float
    multimatch: dict[str, float]
    behaviour: BehaviourStats
    delta: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "sequence_score": self.sequence_score,
            "multimatch": self.multimatch,
            "behaviour": self.behaviour.as_dict(),
            "delta": self.delta,
        }


@torch.no_grad()
def predict_scanpaths(
    model: OAT, tensors: Sequence[TrialTensors], samples: int | None = None, seed: int = 0, rows: int = 512
) -> Paths:
    """OAT's scanpaths per trial: greedy (one each) when `samples` is None, else `samples` sampled.

    Decodes about `rows` sequences (trials × samples) per call on the model's device.
    """
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    chunk = max(1, rows // (samples or 1))
    out: Paths = []
    for start in range(0, len(tensors), chunk):
        x = collate_trials(tensors[start : start + chunk]).to(device)
        decoded = greedy(model, x) if samples is None else sample(model, x, samples, generator=gen)
        out.extend(decoded.scanpaths())
    return out


def _pairs(preds: Paths, refs: Paths) -> tuple[list[list[int]], list[list[int]], np.ndarray]:
    p_all, r_all, owner = [], [], []
    for t, (ps, rs) in enumerate(zip(preds, refs, strict=True)):
        for p in ps:
            for r in rs:
                p_all.append(p)
                r_all.append(r)
                owner.append(t)
    return p_all, r_all, np.asarray(owner)


def _per_trial_mean(values: np.ndarray, owner: np.ndarray, n: int) -> float:
    sums, counts = np.bincount(owner, values, n), np.bincount(owner, minlength=n)
    return float(np.mean(sums[counts > 0] / counts[counts > 0]))


def score_predictions(trials: Sequence[Trial], preds: Paths, refs: Paths) -> MethodScores:
    """Score predicted scanpaths against reference scanpaths, trial by trial."""
    p_all, r_all, owner = _pairs(preds, refs)
    n = len(trials)
    ss = _per_trial_mean(sequence_scores(p_all, r_all), owner, n)
    centres = [t.centres for t in trials]
    diag = np.array([trials[t].diagonal for t in owner])
    mm = multimatch_scores(
        [centres[t][p] for p, t in zip(p_all, owner, strict=True)],
        [centres[t][r] for r, t in zip(r_all, owner, strict=True)],
        diag,
    )
    targets = [t.target for t in trials]
    pred_stats = mean_behaviour(
        [p for ps in preds for p in ps], [targets[t] for t, ps in enumerate(preds) for _ in ps]
    )
    ref_stats = reference_behaviour(trials, refs)
    return MethodScores(
        ss,
        {k: _per_trial_mean(mm[k], owner, n) for k in MM_KEYS},
        pred_stats,
        behaviour_delta(pred_stats, ref_stats),
    )


def reference_behaviour(trials: Sequence[Trial], refs: Paths) -> BehaviourStats:
    """Mean behavioural statistics of the reference scanpaths."""
    return mean_behaviour(
        [r for rs in refs for r in rs], [trials[t].target for t, rs in enumerate(refs) for _ in rs]
    )


def baseline_predictions(trials: Sequence[Trial], refs: Paths, samples: int, seed: int) -> dict[str, Paths]:
    """Predictions of every baseline: random and simulator `samples` per trial, the others one."""
    cap = max(1, round(float(np.mean([len(r) for rs in refs for r in rs]))))
    geos = [geometry(t) for t in trials]
    out: dict[str, Paths] = {}
    methods: list[tuple[str, Baseline, int]] = [(k, f, samples) for k, f in STOCHASTIC.items()]
    methods += [(k, f, 1) for k, f in DETERMINISTIC.items()]
    for name, fn, k in methods:
        out[name] = [
            [fn(geo, subject_rng(seed, t, BASELINE_SUBJECT_OFFSET + s), cap) for s in range(k)]
            for t, geo in enumerate(geos)
        ]
    return out


def evaluate(
    model: OAT | None, trials: Sequence[Trial], refs: Paths, samples: int = 100, seed: int = 0
) -> dict[str, MethodScores]:
    """Scores of OAT (greedy and sampled; skipped when `model` is None) and every baseline."""
    preds: dict[str, Paths] = {}
    if model is not None:
        tensors = [trial_tensors(t, model.config) for t in trials]
        preds["oat_greedy"] = predict_scanpaths(model, tensors)
        preds["oat_sampled"] = predict_scanpaths(model, tensors, samples=samples, seed=seed)
    preds.update(baseline_predictions(trials, refs, samples, seed))
    return {name: score_predictions(trials, p, refs) for name, p in preds.items()}
