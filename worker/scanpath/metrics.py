"""Scanpath metrics of OAT (PAPERS.md §3): sequence score, MultiMatch, behavioural statistics.

* **Sequence score** = Needleman–Wunsch score with match 1, mismatch 0, gap 0 divided by
  max(|P|, |G|). With those weights NW is the longest common subsequence, computed here
  row by row: dp[i, j] = cummax_j max(dp[i−1, j−1] + match, dp[i−1, j]), vectorised over
  many (P, G) pairs at once.
* **MultiMatch** (vector, direction, length, position; no duration: object-level scanpaths
  have none). Fixations are object centres in pixels; saccades are differences of
  consecutive fixations. As in MultiMatch the saccades of P and G are aligned by the
  cheapest monotone path (moves right, down, diagonal) through the matrix of saccade-vector
  difference norms, from the first pair to the last; MultiMatch runs Dijkstra on that graph,
  a dynamic programme gives the same path (ties: diagonal first). Along the path the medians
  of |u−v|, the angle between u and v, ||u|−|v|| and the distance between saccade start
  points are normalised: vector 1−d/(2·diag), direction 1−θ/π, length and position 1−d/diag.
  MultiMatch's simplification step is not applied: object-level scanpaths are already short.
  A one-fixation scanpath is treated as one zero-length saccade on its object.
* **Behaviour.** Consecutive fixations on one object form a run. Target found = last
  fixation on the target; length; search ratio = runs on not-yet-visited objects / length;
  refixation ratio = Σ(run length − 1) / length; revisit ratio = runs on already visited
  objects / length (the three ratios sum to 1). Δ = (1/5) Σ_k |m_k − g_k| / g_k; a
  statistic whose reference g_k is 0 contributes |m_k| instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

Path = Sequence[int]
MM_KEYS = ("vector", "direction", "length", "position")
MM_CHUNK = 2048


def _pad(paths: Sequence[Path], fill: int) -> np.ndarray:
    width = max((len(p) for p in paths), default=0)
    out = np.full((len(paths), width), fill, dtype=np.int64)
    for k, p in enumerate(paths):
        out[k, : len(p)] = p
    return out


def sequence_scores(preds: Sequence[Path], gts: Sequence[Path]) -> np.ndarray:
    """Return the sequence score of each (pred, gt) pair: (M,) float in 0..1.

    Two empty scanpaths score 1; one empty scanpath scores 0.
    """
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} references")
    # distinct pad values never match each other, so padding leaves the LCS unchanged
    p, g = _pad(preds, -1), _pad(gts, -2)
    dp = np.zeros((len(preds), g.shape[1] + 1), dtype=np.int64)
    for i in range(p.shape[1]):
        match = (p[:, i : i + 1] == g).astype(np.int64)
        cand = np.maximum(dp[:, :-1] + match, dp[:, 1:])
        dp[:, 1:] = np.maximum.accumulate(cand, axis=1)
    longest = np.array([max(len(a), len(b)) for a, b in zip(preds, gts, strict=True)], dtype=np.float64)
    return np.where(longest > 0, dp[:, -1] / np.maximum(longest, 1), 1.0)


def sequence_score(pred: Path, gt: Path) -> float:
    """Return the sequence score of one pair, in 0..1."""
    return float(sequence_scores([pred], [gt])[0])


def _saccades(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (starts, vectors), each (S, 2); one zero saccade for a single fixation."""
    if len(xy) == 0:
        raise ValueError("MultiMatch needs at least one fixation")
    if len(xy) == 1:
        return xy.copy(), np.zeros_like(xy)
    return xy[:-1], np.diff(xy, axis=0)


def _stack(items: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(a) for a in items)
    out = np.zeros((len(items), width, 2))
    for k, a in enumerate(items):
        out[k, : len(a)] = a
    return out, np.array([len(a) for a in items])


def _cost_to_go(cost: np.ndarray) -> np.ndarray:
    """Cumulative cheapest-path cost from (0, 0): (M, n, m); inf outside each pair's matrix."""
    n, m = cost.shape[1:]
    # one inf border row and column, so every cell has three predecessors
    acc = np.full((cost.shape[0], n + 1, m + 1), np.inf)
    acc[:, 0, 0] = 0.0
    for d in range(n + m - 1):  # anti-diagonals: n+m steps instead of n·m
        i = np.arange(max(0, d - m + 1), min(n, d + 1))
        j = d - i
        prev = np.minimum(np.minimum(acc[:, i, j], acc[:, i, j + 1]), acc[:, i + 1, j])
        acc[:, i + 1, j + 1] = cost[:, i, j] + prev
    acc[:, 0, 0] = np.inf
    return acc[:, 1:, 1:]


def _backtrack(acc: np.ndarray, n_len: np.ndarray, m_len: np.ndarray) -> tuple[np.ndarray, ...]:
    """Trace each pair's path back from its last cell; returns (ii, jj, valid), each (M, n+m)."""
    steps = acc.shape[1] + acc.shape[2]
    rows = np.arange(len(acc))
    i, j = n_len - 1, m_len - 1
    ii, jj = np.zeros((len(acc), steps), np.int64), np.zeros((len(acc), steps), np.int64)
    valid = np.zeros((len(acc), steps), bool)
    for s in range(steps):
        active = (i >= 0) & (j >= 0)
        ii[:, s], jj[:, s], valid[:, s] = np.maximum(i, 0), np.maximum(j, 0), active
        at_start = (i == 0) & (j == 0)
        diag = np.where((i > 0) & (j > 0), acc[rows, np.maximum(i - 1, 0), np.maximum(j - 1, 0)], np.inf)
        up = np.where(i > 0, acc[rows, np.maximum(i - 1, 0), np.maximum(j, 0)], np.inf)
        left = np.where(j > 0, acc[rows, np.maximum(i, 0), np.maximum(j - 1, 0)], np.inf)
        take_diag = (diag <= up) & (diag <= left)
        take_up = ~take_diag & (up <= left)
        di = np.where(take_diag | take_up, 1, 0)
        dj = np.where(take_diag | ~take_up, 1, 0)
        i = np.where(at_start | ~active, -1, i - di)
        j = np.where(at_start | ~active, -1, j - dj)
    return ii, jj, valid


def multimatch_scores(
    preds_xy: Sequence[np.ndarray], gts_xy: Sequence[np.ndarray], diag: float | np.ndarray
) -> dict[str, np.ndarray]:
    """MultiMatch similarities of (pred, gt) fixation-coordinate pairs.

    `preds_xy[k]`, `gts_xy[k]` are (L, 2) pixel coordinates; `diag` the image diagonal (scalar
    or (M,)). Returns {vector, direction, length, position}: each (M,) in 0..1.
    """
    if len(preds_xy) != len(gts_xy):
        raise ValueError(f"{len(preds_xy)} predictions for {len(gts_xy)} references")
    diag_all = np.broadcast_to(np.asarray(diag, np.float64), (len(preds_xy),))
    # pairs of similar lengths share a chunk, so padding costs little and memory stays bounded
    order = np.argsort([max(len(a), len(b)) for a, b in zip(preds_xy, gts_xy, strict=True)], kind="stable")
    out = {k: np.zeros(len(order)) for k in MM_KEYS}
    for start in range(0, len(order), MM_CHUNK):
        idx = order[start : start + MM_CHUNK]
        part = _multimatch_chunk([preds_xy[i] for i in idx], [gts_xy[i] for i in idx], diag_all[idx])
        for k in MM_KEYS:
            out[k][idx] = part[k]
    return out


def _multimatch_chunk(
    preds_xy: Sequence[np.ndarray], gts_xy: Sequence[np.ndarray], diag: np.ndarray
) -> dict[str, np.ndarray]:
    ps = [_saccades(np.asarray(a, dtype=np.float64)) for a in preds_xy]
    gs = [_saccades(np.asarray(a, dtype=np.float64)) for a in gts_xy]
    pv, n_len = _stack([v for _, v in ps])
    gv, m_len = _stack([v for _, v in gs])
    p0, _ = _stack([s for s, _ in ps])
    g0, _ = _stack([s for s, _ in gs])
    cost = np.linalg.norm(pv[:, :, None] - gv[:, None], axis=-1)
    valid_cell = (np.arange(cost.shape[1])[None, :, None] < n_len[:, None, None]) & (
        np.arange(cost.shape[2])[None, None, :] < m_len[:, None, None]
    )
    ii, jj, valid = _backtrack(_cost_to_go(np.where(valid_cell, cost, np.inf)), n_len, m_len)
    rows = np.arange(len(ps))[:, None]
    u, v = pv[rows, ii], gv[rows, jj]
    return _normalised_medians(u, v, p0[rows, ii], g0[rows, jj], valid, diag)


def _angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Angle between vectors in 0..π; a zero vector counts as direction 0 (as atan2 does)."""
    d = np.abs(np.arctan2(u[..., 1], u[..., 0]) - np.arctan2(v[..., 1], v[..., 0]))
    return np.minimum(d, 2 * np.pi - d)


def _normalised_medians(
    u: np.ndarray, v: np.ndarray, pu: np.ndarray, pv: np.ndarray, valid: np.ndarray, diag: np.ndarray
) -> dict[str, np.ndarray]:
    raw = {
        "vector": np.linalg.norm(u - v, axis=-1),
        "direction": _angle(u, v),
        "length": np.abs(np.linalg.norm(u, axis=-1) - np.linalg.norm(v, axis=-1)),
        "position": np.linalg.norm(pu - pv, axis=-1),
    }
    med = {k: np.nanmedian(np.where(valid, a, np.nan), axis=1) for k, a in raw.items()}
    scale = {"vector": 2 * diag, "direction": np.pi, "length": diag, "position": diag}
    return {k: 1 - med[k] / scale[k] for k in MM_KEYS}


def multimatch(pred_xy: np.ndarray, gt_xy: np.ndarray, diag: float) -> dict[str, float]:
    """MultiMatch of one pair of (L, 2) fixation coordinates; returns the four similarities."""
    return {k: float(a[0]) for k, a in multimatch_scores([pred_xy], [gt_xy], diag).items()}


@dataclass(frozen=True)
class BehaviourStats:
    """The five behavioural statistics of a scanpath (or their mean over scanpaths)."""

    target_found: float
    length: float
    search_ratio: float
    refixation_ratio: float
    revisit_ratio: float

    def as_dict(self) -> dict[str, float]:
        """Return the statistics as a plain dict (JSON-ready)."""
        return asdict(self)


HUMAN_AMAZON = BehaviourStats(0.84, 14.5, 0.78, 0.17, 0.05)
"""Human statistics on the 6×14 Amazon book-cover grids that the simulator is calibrated to."""


def runs(scanpath: Path) -> list[tuple[int, int]]:
    """Return the runs of consecutive fixations on one object: [(object, run length), ...]."""
    out: list[tuple[int, int]] = []
    for obj in scanpath:
        if out and out[-1][0] == obj:
            out[-1] = (obj, out[-1][1] + 1)
        else:
            out.append((obj, 1))
    return out


def behaviour_stats(scanpath: Path, target: int) -> BehaviourStats:
    """Return the five statistics of one non-empty scanpath."""
    if not scanpath:
        raise ValueError("behavioural statistics need a non-empty scanpath")
    length = len(scanpath)
    seen: set[int] = set()
    new_runs = revisit_runs = refix = 0
    for obj, n in runs(scanpath):
        revisit_runs += obj in seen
        new_runs += obj not in seen
        refix += n - 1
        seen.add(obj)
    found = float(scanpath[-1] == target)
    return BehaviourStats(found, float(length), new_runs / length, refix / length, revisit_runs / length)


def mean_behaviour(scanpaths: Sequence[Path], targets: Sequence[int]) -> BehaviourStats:
    """Return the per-statistic mean over scanpaths (each with its trial's target)."""
    if not scanpaths:
        raise ValueError("no scanpaths to average")
    stats = [asdict(behaviour_stats(p, t)) for p, t in zip(scanpaths, targets, strict=True)]
    return BehaviourStats(**{k: float(np.mean([s[k] for s in stats])) for k in stats[0]})


def behaviour_delta(model: BehaviourStats, reference: BehaviourStats) -> float:
    """Return Δ = (1/5) Σ_k |m_k − g_k| / g_k (lower is better)."""
    m, g = asdict(model), asdict(reference)
    terms = [abs(m[k] - g[k]) / g[k] if g[k] != 0 else abs(m[k]) for k in g]
    return float(np.mean(terms))
