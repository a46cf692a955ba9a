"""Evaluate scanpath predictors against reference scanpaths, OAT-style.

For each trial a method predicts one or more scanpaths (OAT greedy: 1, OAT sampled: S,
random and simulator: S, nearest and similarity: 1 because they are deterministic). Every
(prediction, reference) pair of a trial is scored; scores are averaged per trial, then over
trials. Behavioural statistics are averaged over all predicted scanpaths and compared with
those of all reference scanpaths (Δ). The baselines' length cap is the rounded mean
reference length. Sampling is seeded: the same call gives the same numbers.

Trials stream through in chunks (`evaluate`'s `chunk`): each chunk is predicted, scored and
folded into running sums (`Tally`), so memory does not grow with the number of trials. The
sums are taken trial by trial in trial order and OAT decodes the same batches with the same
random stream whatever the chunk size, so chunking never changes a result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vitscope.scanpath.baselines import DETERMINISTIC, STOCHASTIC, Baseline
from vitscope.scanpath.batching import SceneBank
from vitscope.scanpath.metrics import (
    BEHAVIOUR_KEYS,
    MM_KEYS,
    BehaviourStats,
    PaddedPaths,
    Saccades,
    behaviour_arrays,
    behaviour_delta,
    pair_multimatch,
    pair_sequence_scores,
)
from vitscope.scanpath.model import OAT, greedy_and_sample
from vitscope.scanpath.simulator import geometry, subject_rng
from vitscope.scanpath.trials import Trial

Paths = list[list[list[int]]]
"""Scanpaths per trial: paths[trial][k] = object indices."""

BASELINE_SUBJECT_OFFSET = 1000  # simulator-baseline streams never coincide with reference subjects
CHUNK_TRIALS = 64  # trials per evaluation chunk (rounded to whole OAT decoding batches)
DECODE_ROWS = {"cpu": 512, "cuda": 4096}  # sequences decoded together per device type


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


@dataclass(frozen=True)
class Evaluation:
    """The reference scanpaths' mean behaviour and every method's scores."""

    reference: BehaviourStats
    methods: dict[str, MethodScores]


@dataclass
class Tally:
    """Running sums of one method over trials, added one trial after another in trial order.

    `pair_sums`: Σ over trials of the trial's mean pair score (sequence score and MultiMatch);
    `behaviour_sums`: Σ over scanpaths of each behavioural statistic.
    """

    trials: int = 0
    paths: int = 0
    pair_sums: dict[str, float] = field(default_factory=dict)
    behaviour_sums: dict[str, float] = field(default_factory=dict)

    def add_pairs(self, per_trial: dict[str, np.ndarray]) -> None:
        """Add per-trial mean scores {key: (T,)}."""
        for key, values in per_trial.items():
            self.pair_sums[key] = _running_sum(self.pair_sums.get(key, 0.0), values)
        self.trials += len(next(iter(per_trial.values())))

    def add_behaviour(self, per_trial_sums: dict[str, np.ndarray], paths: int) -> None:
        """Add per-trial sums of the statistics {key: (T,)} over `paths` scanpaths."""
        for key, values in per_trial_sums.items():
            self.behaviour_sums[key] = _running_sum(self.behaviour_sums.get(key, 0.0), values)
        self.paths += paths

    def behaviour(self) -> BehaviourStats:
        """Mean behavioural statistics over every added scanpath."""
        if not self.paths:
            raise ValueError("no scanpaths to average")
        return BehaviourStats(**{k: self.behaviour_sums[k] / self.paths for k in BEHAVIOUR_KEYS})

    def scores(self, reference: BehaviourStats) -> MethodScores:
        """The method's scores, Δ against the `reference` behaviour."""
        mean = {k: v / self.trials for k, v in self.pair_sums.items()}
        stats = self.behaviour()
        return MethodScores(
            mean["sequence_score"], {k: mean[k] for k in MM_KEYS}, stats, behaviour_delta(stats, reference)
        )


def _running_sum(total: float, values: np.ndarray) -> float:
    for v in values.tolist():  # one at a time, in order: the same sum for any chunking
        total += v
    return total


@dataclass(frozen=True)
class ChunkScorer:
    """Scores predictions on a chunk of trials against the chunk's reference scanpaths."""

    trials: Sequence[Trial]
    refs: PaddedPaths
    ref_owner: np.ndarray
    ref_saccades: Saccades
    centres: np.ndarray
    targets: np.ndarray
    diagonals: np.ndarray

    @classmethod
    def of(cls, trials: Sequence[Trial], refs: Paths) -> ChunkScorer:
        """Pad the references once; `centres` (T, N_max, 2) pixel centres of every trial."""
        n_max = max(t.n for t in trials)
        centres = np.zeros((len(trials), n_max, 2))
        for k, t in enumerate(trials):
            centres[k, : t.n] = t.centres
        flat, owner = _flatten(refs)
        padded = PaddedPaths.from_lists(flat)
        targets = np.array([t.target for t in trials], dtype=np.int64)
        diagonals = np.array([t.diagonal for t in trials])
        return cls(trials, padded, owner, _saccades(padded, owner, centres), centres, targets, diagonals)

    def pair_means(self, preds: Paths) -> dict[str, np.ndarray]:
        """Per-trial mean sequence score and MultiMatch {key: (T,)} over every (pred, ref) pair."""
        flat, owner = _flatten(preds)
        padded = PaddedPaths.from_lists(flat)
        pi, ri = _pairs(owner, self.ref_owner)
        scores = {"sequence_score": pair_sequence_scores(padded, self.refs, pi, ri)}
        sacc = _saccades(padded, owner, self.centres)
        scores.update(pair_multimatch(sacc, self.ref_saccades, pi, ri, self.diagonals[owner[pi]]))
        n = len(self.trials)
        counts = np.bincount(owner[pi], minlength=n)
        with_pairs = counts > 0
        return {
            k: (np.bincount(owner[pi], v, n) / np.maximum(counts, 1))[with_pairs] for k, v in scores.items()
        }

    def behaviour_sums(self, paths: Paths) -> tuple[dict[str, np.ndarray], int]:
        """Per-trial sums of each statistic {key: (T,)} and the number of scanpaths."""
        flat, owner = _flatten(paths)
        stats = behaviour_arrays(PaddedPaths.from_lists(flat), self.targets[owner])
        return {k: np.bincount(owner, v, len(self.trials)) for k, v in stats.items()}, len(flat)

    def add(self, tally: Tally, preds: Paths) -> None:
        """Score `preds` and fold them into `tally`."""
        tally.add_pairs(self.pair_means(preds))
        tally.add_behaviour(*self.behaviour_sums(preds))


def _flatten(paths: Paths) -> tuple[list[list[int]], np.ndarray]:
    flat = [p for ps in paths for p in ps]
    owner = np.repeat(np.arange(len(paths)), [len(ps) for ps in paths])
    return flat, owner


def _pairs(pred_owner: np.ndarray, ref_owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (prediction, reference) pair of a trial, by prediction then reference: (pi, ri)."""
    n = int(max(pred_owner.max(initial=-1), ref_owner.max(initial=-1))) + 1
    per_trial = np.bincount(ref_owner, minlength=n)
    first_ref = np.concatenate([[0], np.cumsum(per_trial)[:-1]])
    counts = per_trial[pred_owner]
    pi = np.repeat(np.arange(len(pred_owner)), counts)
    offset = np.arange(len(pi)) - np.repeat(np.cumsum(counts) - counts, counts)
    return pi, first_ref[pred_owner[pi]] + offset


def _saccades(paths: PaddedPaths, owner: np.ndarray, centres: np.ndarray) -> Saccades:
    xy = centres[owner[:, None], np.maximum(paths.objects, 0)]
    return Saccades.of(xy, paths.lengths)


def score_predictions(trials: Sequence[Trial], preds: Paths, refs: Paths) -> MethodScores:
    """Score predicted scanpaths against reference scanpaths, trial by trial."""
    scorer = ChunkScorer.of(trials, refs)
    tally, reference = Tally(), Tally()
    scorer.add(tally, preds)
    reference.add_behaviour(*scorer.behaviour_sums(refs))
    return tally.scores(reference.behaviour())


def reference_behaviour(trials: Sequence[Trial], refs: Paths) -> BehaviourStats:
    """Mean behavioural statistics of the reference scanpaths."""
    tally = Tally()
    tally.add_behaviour(*ChunkScorer.of(trials, refs).behaviour_sums(refs))
    return tally.behaviour()


def length_cap(refs: Paths) -> int:
    """The baselines' length cap: the rounded mean reference length (at least 1)."""
    lengths = [len(r) for rs in refs for r in rs]
    return max(1, round(float(np.mean(lengths))))


def baseline_predictions(
    trials: Sequence[Trial], samples: int, seed: int, cap: int, first: int = 0
) -> dict[str, Paths]:
    """Predictions of every baseline: random and simulator `samples` per trial, the others one.

    `first` is the index of `trials[0]` in the whole evaluation (it seeds the streams).
    """
    geos = [geometry(t) for t in trials]
    out: dict[str, Paths] = {}
    methods: list[tuple[str, Baseline, int]] = [(k, f, samples) for k, f in STOCHASTIC.items()]
    methods += [(k, f, 1) for k, f in DETERMINISTIC.items()]
    for name, fn, k in methods:
        out[name] = [
            [fn(geo, subject_rng(seed, first + t, BASELINE_SUBJECT_OFFSET + s), cap) for s in range(k)]
            for t, geo in enumerate(geos)
        ]
    return out


def decode_rows(device: torch.device) -> int:
    """Sequences to decode together on `device`."""
    return DECODE_ROWS.get(device.type, DECODE_ROWS["cuda"])


def predict_scanpaths(
    model: OAT, scenes: SceneBank, samples: int, generator: torch.Generator, rows: int | None = None
) -> tuple[Paths, Paths]:
    """OAT's scanpaths per scene: (greedy, one each; sampled, `samples` each with `generator`).

    Decodes batches of `rows` // samples scenes (default `decode_rows` of the device), each
    encoded once for both decodings.
    """
    device = next(model.parameters()).device
    chunk = max(1, (rows or decode_rows(device)) // samples)
    greedy_paths: Paths = []
    sampled_paths: Paths = []
    for start in range(0, len(scenes), chunk):
        x = scenes.take(slice(start, start + chunk))
        greedy, sampled = greedy_and_sample(model, x, samples, generator)
        greedy_paths.extend(greedy.scanpaths())
        sampled_paths.extend(sampled.scanpaths())
    return greedy_paths, sampled_paths


def evaluate(
    model: OAT | None,
    trials: Sequence[Trial],
    refs: Paths,
    samples: int = 100,
    seed: int = 0,
    chunk: int = CHUNK_TRIALS,
    rows: int | None = None,
    progress: bool = False,
) -> Evaluation:
    """Scores of OAT (greedy and sampled; skipped when `model` is None) and every baseline.

    Trials are read about `chunk` at a time: the chunk is rounded up to whole OAT decoding
    batches of `rows` // samples scenes (`rows` default: `decode_rows` of the model's device),
    so that every chunk size gives the same numbers.
    """
    device = next(model.parameters()).device if model is not None else torch.device("cpu")
    rows = rows or decode_rows(device)
    per_batch = max(1, rows // samples)
    size = per_batch * -(-max(chunk, 1) // per_batch)
    gen = torch.Generator(device=device).manual_seed(seed)
    cap, reference = length_cap(refs), Tally()
    tallies: dict[str, Tally] = {}
    for start in tqdm(range(0, len(trials), size), desc="eval", unit="chunk", disable=not progress):
        part = [trials[i] for i in range(start, min(start + size, len(trials)))]
        part_refs = refs[start : start + len(part)]
        preds: dict[str, Paths] = {}
        if model is not None:
            bank = SceneBank.from_trials(part, model.config, device)
            preds["oat_greedy"], preds["oat_sampled"] = predict_scanpaths(model, bank, samples, gen, rows)
        preds.update(baseline_predictions(part, samples, seed, cap, first=start))
        scorer = ChunkScorer.of(part, part_refs)
        for name, paths in preds.items():
            scorer.add(tallies.setdefault(name, Tally()), paths)
        reference.add_behaviour(*scorer.behaviour_sums(part_refs))
    stats = reference.behaviour()
    return Evaluation(stats, {name: t.scores(stats) for name, t in tallies.items()})
