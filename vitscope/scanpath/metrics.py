"""Scanpath metrics of OAT (PAPERS.md §3): sequence score, MultiMatch, behavioural statistics.

* **Sequence score** = Needleman–Wunsch score with match 1, mismatch 0, gap 0 divided by
  max(|P|, |G|). With those weights NW is the longest common subsequence, computed with
  Hyyrö's bit-parallel recurrence V ← (V + (V & M)) | (V & ~M) over a 64-bit word per pair
  (M: the positions of P's next object in G), vectorised over many (P, G) pairs at once;
  a pair whose scanpaths are both longer than 64 falls back to the row-by-row dynamic
  programme dp[i, j] = cummax_j max(dp[i−1, j−1] + match, dp[i−1, j]).
* **MultiMatch** (vector, direction, length, position; no duration: object-level scanpaths
  have none). Fixations are object centres in pixels; saccades are differences of
  consecutive fixations. As in MultiMatch the saccades of P and G are aligned by the
  cheapest monotone path (moves right, down, diagonal) through the matrix of saccade-vector
  difference norms, from the first pair to the last; MultiMatch runs Dijkstra on that graph,
  a dynamic programme over anti-diagonals gives the same path (ties: diagonal first). Along
  the path the medians of |u−v|, the angle between u and v, ||u|−|v|| and the distance
  between saccade start points are normalised: vector 1−d/(2·diag), direction 1−θ/π, length
  and position 1−d/diag. MultiMatch's simplification step is not applied: object-level
  scanpaths are already short. A one-fixation scanpath is treated as one zero-length saccade
  on its object.
* **Behaviour.** Consecutive fixations on one object form a run. Target found = last
  fixation on the target; length; search ratio = runs on not-yet-visited objects / length;
  refixation ratio = Σ(run length − 1) / length; revisit ratio = runs on already visited
  objects / length (the three ratios sum to 1). Δ = (1/5) Σ_k |m_k − g_k| / g_k; a
  statistic whose reference g_k is 0 contributes |m_k| instead.

Scoring many pairs: scanpaths are padded once (`PaddedPaths`, `Saccades`) and pairs are index
arrays into them, so each scanpath is converted once however many references it meets.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np

Path = Sequence[int]
MM_KEYS = ("vector", "direction", "length", "position")
MM_CELLS = 1 << 21  # alignment-matrix cells per MultiMatch block: bounds memory (~16 MB an array)
LCS_PAIRS = 1 << 15  # pairs per bit-parallel LCS block
LCS_TABLE = 1 << 22  # largest match table (scanpaths × symbols) before the LCS falls back to DP
WORD = 64


@dataclass(frozen=True)
class PaddedPaths:
    """K scanpaths as one array: `objects` (K, L) int64, −1 after each end; `lengths` (K,)."""

    objects: np.ndarray
    lengths: np.ndarray

    @classmethod
    def from_lists(cls, paths: Sequence[Path]) -> PaddedPaths:
        """Pad lists of object indices (each >= 0)."""
        lengths = np.fromiter((len(p) for p in paths), np.int64, len(paths))
        objects = np.full((len(paths), int(lengths.max(initial=0))), -1, dtype=np.int64)
        flat = np.fromiter(itertools.chain.from_iterable(paths), np.int64, int(lengths.sum()))
        if (flat < 0).any():
            raise ValueError("scanpaths are object indices >= 0")
        objects[np.arange(objects.shape[1]) < lengths[:, None]] = flat
        return cls(objects, lengths)


def sequence_scores(preds: Sequence[Path], gts: Sequence[Path]) -> np.ndarray:
    """Return the sequence score of each (pred, gt) pair: (M,) float in 0..1.

    Two empty scanpaths score 1; one empty scanpath scores 0.
    """
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} references")
    pairs = np.arange(len(preds))
    return pair_sequence_scores(PaddedPaths.from_lists(preds), PaddedPaths.from_lists(gts), pairs, pairs)


def pair_sequence_scores(preds: PaddedPaths, gts: PaddedPaths, pi: np.ndarray, gi: np.ndarray) -> np.ndarray:
    """Sequence scores (M,) of the pairs (preds[pi[k]], gts[gi[k]])."""
    lcs = np.empty(len(pi), dtype=np.int64)
    for start in range(0, len(pi), LCS_PAIRS):
        block = slice(start, start + LCS_PAIRS)
        lcs[block] = _lcs_lengths(preds, gts, pi[block], gi[block])
    longest = np.maximum(preds.lengths[pi], gts.lengths[gi]).astype(np.float64)
    return np.where(longest > 0, lcs / np.maximum(longest, 1), 1.0)


def _lcs_lengths(a: PaddedPaths, b: PaddedPaths, ai: np.ndarray, bi: np.ndarray) -> np.ndarray:
    """LCS length of each pair (a[ai[k]], b[bi[k]]), (M,) int64. The distinct scanpaths of `b`
    in the block take the bit vectors, so each match table is built once."""
    if b.lengths[bi].max(initial=0) > WORD >= a.lengths[ai].max(initial=0):
        a, b, ai, bi = b, a, bi, ai  # LCS is symmetric: the short side takes the bits
    rows, local = np.unique(bi, return_inverse=True)
    pa = a.objects[ai, : a.lengths[ai].max(initial=0)]
    pb, nb = b.objects[rows, : b.lengths[rows].max(initial=0)], b.lengths[rows]
    symbols = int(max(pa.max(initial=-1), pb.max(initial=-1))) + 2  # column 0 stands for padding
    if pb.shape[1] > WORD or len(pb) * symbols > LCS_TABLE:
        return _lcs_dp(pa, pb[local])
    table = _match_bits(pb, symbols)
    v = np.full(len(pa), np.iinfo(np.uint64).max, dtype=np.uint64)
    for i in range(pa.shape[1]):
        m = table[local, pa[:, i] + 1]  # padding reads column 0, all zero: V stays
        v = (v + (v & m)) | (v & ~m)
    n = nb[local].astype(np.uint64)
    low = np.where(n >= WORD, np.iinfo(np.uint64).max, (np.uint64(1) << np.minimum(n, WORD - 1)) - 1)
    return np.bitwise_count(~v & low).astype(np.int64)  # the LCS: zero bits of V among |b|


def _match_bits(b: np.ndarray, symbols: int) -> np.ndarray:
    """table[r, s + 1] = bit j set where b[r, j] == s: (R, symbols) uint64; column 0 is padding."""
    table = np.zeros((len(b), symbols), dtype=np.uint64)
    rows = np.arange(len(b))
    for j in range(b.shape[1]):
        table[rows, b[:, j] + 1] |= np.uint64(1) << np.uint64(j)
    table[:, 0] = 0
    return table


def _lcs_dp(p: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Row-by-row LCS of pairs (p[k], g[k]), both padded with −1: (M,) int64."""
    g = np.where(g < 0, -2, g)  # distinct pad values never match each other
    dp = np.zeros((len(p), g.shape[1] + 1), dtype=np.int64)
    for i in range(p.shape[1]):
        match = (p[:, i : i + 1] == g).astype(np.int64)
        cand = np.maximum(dp[:, :-1] + match, dp[:, 1:])
        dp[:, 1:] = np.maximum.accumulate(cand, axis=1)
    return dp[:, -1]


def sequence_score(pred: Path, gt: Path) -> float:
    """Return the sequence score of one pair, in 0..1."""
    return float(sequence_scores([pred], [gt])[0])


@dataclass(frozen=True)
class Saccades:
    """Saccades of K scanpaths, zero-padded: `starts`, `vectors` (K, S, 2) pixels; `counts` (K,).

    A one-fixation scanpath is one zero saccade on its fixation.
    """

    starts: np.ndarray
    vectors: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, xy: np.ndarray, lengths: np.ndarray) -> Saccades:
        """Saccades of fixations `xy` (K, L, 2) (entries after each length are ignored)."""
        if (lengths < 1).any():
            raise ValueError("MultiMatch needs at least one fixation")
        xy = np.asarray(xy, dtype=np.float64)
        k, width = len(xy), max(xy.shape[1] - 1, 1)
        starts, vectors = np.zeros((k, width, 2)), np.zeros((k, width, 2))
        starts[:, : xy.shape[1] - 1] = xy[:, :-1]
        vectors[:, : xy.shape[1] - 1] = xy[:, 1:] - xy[:, :-1]
        single = lengths == 1
        starts[single, 0], vectors[single, 0] = xy[single, 0], 0.0
        counts = np.maximum(lengths - 1, 1)
        outside = np.arange(width) >= counts[:, None]
        starts[outside], vectors[outside] = 0.0, 0.0
        return cls(starts, vectors, counts)

    @classmethod
    def from_lists(cls, xys: Sequence[np.ndarray]) -> Saccades:
        """Saccades of fixation lists, each (L, 2) pixels."""
        lengths = np.array([len(a) for a in xys], dtype=np.int64)
        xy = np.zeros((len(xys), int(lengths.max(initial=1)), 2))
        for k, a in enumerate(xys):
            xy[k, : len(a)] = a
        return cls.of(xy, lengths)


def multimatch_scores(
    preds_xy: Sequence[np.ndarray], gts_xy: Sequence[np.ndarray], diag: float | np.ndarray
) -> dict[str, np.ndarray]:
    """MultiMatch similarities of (pred, gt) fixation-coordinate pairs.

    `preds_xy[k]`, `gts_xy[k]` are (L, 2) pixel coordinates; `diag` the image diagonal (scalar
    or (M,)). Returns {vector, direction, length, position}: each (M,) in 0..1.
    """
    if len(preds_xy) != len(gts_xy):
        raise ValueError(f"{len(preds_xy)} predictions for {len(gts_xy)} references")
    pairs = np.arange(len(preds_xy))
    return pair_multimatch(Saccades.from_lists(preds_xy), Saccades.from_lists(gts_xy), pairs, pairs, diag)


def pair_multimatch(
    preds: Saccades, gts: Saccades, pi: np.ndarray, gi: np.ndarray, diag: float | np.ndarray
) -> dict[str, np.ndarray]:
    """MultiMatch of the pairs (preds[pi[k]], gts[gi[k]]): {key: (M,)}; `diag` scalar or (M,)."""
    diag_all = np.broadcast_to(np.asarray(diag, np.float64), (len(pi),))
    width = np.maximum(preds.counts[pi], gts.counts[gi])
    # pairs of similar lengths share a block, so padding costs little and memory stays bounded
    order = np.argsort(width, kind="stable")
    out = {k: np.zeros(len(pi)) for k in MM_KEYS}
    for block in _blocks(width[order]):
        idx = order[block]
        part = _multimatch_block(preds, gts, pi[idx], gi[idx], diag_all[idx])
        for k in MM_KEYS:
            out[k][idx] = part[k]
    return out


def _blocks(widths: np.ndarray) -> Iterator[slice]:
    """Consecutive slices of ascending `widths` whose count × widest² stays within MM_CELLS."""
    start = 0
    while start < len(widths):
        stop = min(len(widths), start + max(1, MM_CELLS // int(widths[start]) ** 2))
        if (stop - start) * int(widths[stop - 1]) ** 2 > MM_CELLS:
            stop = start + max(1, MM_CELLS // int(widths[stop - 1]) ** 2)
        yield slice(start, stop)
        start = stop


def _multimatch_block(
    preds: Saccades, gts: Saccades, pi: np.ndarray, gi: np.ndarray, diag: np.ndarray
) -> dict[str, np.ndarray]:
    n_len, m_len = preds.counts[pi], gts.counts[gi]
    pv, gv = preds.vectors[pi, : n_len.max()], gts.vectors[gi, : m_len.max()]
    ii, jj, valid = _backtrack(_cost_to_go(_skewed_cost(pv, gv, n_len, m_len)), n_len, m_len)
    rows = np.arange(len(pi))[:, None]
    starts_p, starts_g = preds.starts[pi[:, None], ii], gts.starts[gi[:, None], jj]
    return _normalised_medians(pv[rows, ii], gv[rows, jj], starts_p, starts_g, valid, diag)


def _skewed_cost(pv: np.ndarray, gv: np.ndarray, n_len: np.ndarray, m_len: np.ndarray) -> np.ndarray:
    """Saccade-difference norms by anti-diagonal: out[:, d, i] = |pv[:, i] − gv[:, d−i]|, inf off
    each pair's n_len × m_len matrix; (M, n+m−1, n), a strided view without copies.

    The norms fill the first m columns of rows n+m−1 wide, the rest inf. Then element (i, d−i)
    lies at i·(W−1) + d in a row-major pair block of width W = n+m−1, and when d−i < 0 that
    offset lands in the previous row's inf tail, so one stride pattern reads every diagonal.
    """
    pairs, n, m = len(pv), pv.shape[1], gv.shape[1]
    width = n + m - 1
    cost = np.empty((pairs, n, width))
    cost[:, :, m:] = np.inf
    dx = pv[:, :, None, 0] - gv[:, None, :, 0]
    dy = pv[:, :, None, 1] - gv[:, None, :, 1]
    dx *= dx
    dx += dy * dy
    np.sqrt(dx, out=cost[:, :, :m])  # the same operations as np.linalg.norm(..., axis=-1)
    cost[np.arange(n) >= n_len[:, None]] = np.inf
    cost.transpose(0, 2, 1)[:, :m][np.arange(m) >= m_len[:, None]] = np.inf
    item = cost.itemsize
    return np.lib.stride_tricks.as_strided(
        cost, (pairs, width, n), (n * width * item, item, (width - 1) * item), writeable=False
    )


def _cost_to_go(skewed: np.ndarray) -> np.ndarray:
    """Cumulative cheapest-path cost from (0, 0) of `skewed` (M, D, n) costs: acc[d + 2, :, i + 1]
    is cell (i, d − i); (D+2, M, n+1), inf off each pair's matrix. acc[0, :, 0] is the virtual
    start before (0, 0), column 0 the border above row 0, so every step works on slices."""
    pairs, diagonals, n = skewed.shape
    acc = np.full((diagonals + 2, pairs, n + 1), np.inf)
    acc[0, :, 0] = 0.0
    for d in range(diagonals):
        # (i−1, j−1) on diagonal d−2, (i−1, j) and (i, j−1) on diagonal d−1
        prev = np.minimum(np.minimum(acc[d, :, :-1], acc[d + 1, :, :-1]), acc[d + 1, :, 1:])
        np.add(skewed[:, d], prev, out=acc[d + 2, :, 1:])
    return acc


def _backtrack(acc: np.ndarray, n_len: np.ndarray, m_len: np.ndarray) -> tuple[np.ndarray, ...]:
    """Trace each pair's path back from its last cell; returns (ii, jj, valid), each (M, n+m)."""
    pairs = acc.shape[1]
    steps = int(n_len.max() + m_len.max())
    rows = np.arange(pairs)
    i, j = n_len - 1, m_len - 1
    ii, jj = np.zeros((pairs, steps), np.int64), np.zeros((pairs, steps), np.int64)
    valid = np.zeros((pairs, steps), bool)
    for s in range(steps):
        active = (i >= 0) & (j >= 0)
        if not active.any():
            break
        ic, jc = np.maximum(i, 0), np.maximum(j, 0)
        ii[:, s], jj[:, s], valid[:, s] = ic, jc, active
        d = ic + jc  # acc[d] holds diagonal d − 2, acc[d + 1] diagonal d − 1
        diag = np.where((i > 0) & (j > 0), acc[d, rows, ic], np.inf)
        up = np.where(i > 0, acc[d + 1, rows, ic], np.inf)
        left = np.where(j > 0, acc[d + 1, rows, ic + 1], np.inf)
        take_diag = (diag <= up) & (diag <= left)
        take_up = ~take_diag & (up <= left)
        stop = ((i == 0) & (j == 0)) | ~active
        i = np.where(stop, -1, i - (take_diag | take_up))
        j = np.where(stop, -1, j - (take_diag | ~take_up))
    return ii, jj, valid


def _angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Angle between vectors in 0..π; a zero vector counts as direction 0 (as atan2 does)."""
    d = np.abs(np.arctan2(u[..., 1], u[..., 0]) - np.arctan2(v[..., 1], v[..., 0]))
    return np.minimum(d, 2 * np.pi - d)


def _valid_median(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Median of each row's valid entries, (M,): the mean of the two middle ones when even."""
    count = valid.sum(axis=1)
    ordered = np.sort(np.where(valid, values, np.inf), axis=1)
    low = np.take_along_axis(ordered, ((count - 1) // 2)[:, None], axis=1)[:, 0]
    high = np.take_along_axis(ordered, (count // 2)[:, None], axis=1)[:, 0]
    return (low + high) / 2


def _normalised_medians(
    u: np.ndarray, v: np.ndarray, pu: np.ndarray, pv: np.ndarray, valid: np.ndarray, diag: np.ndarray
) -> dict[str, np.ndarray]:
    raw = {
        "vector": np.linalg.norm(u - v, axis=-1),
        "direction": _angle(u, v),
        "length": np.abs(np.linalg.norm(u, axis=-1) - np.linalg.norm(v, axis=-1)),
        "position": np.linalg.norm(pu - pv, axis=-1),
    }
    scale = {"vector": 2 * diag, "direction": np.pi, "length": diag, "position": diag}
    return {k: 1 - _valid_median(raw[k], valid) / scale[k] for k in MM_KEYS}


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


BEHAVIOUR_KEYS = ("target_found", "length", "search_ratio", "refixation_ratio", "revisit_ratio")
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


def behaviour_arrays(paths: PaddedPaths, targets: np.ndarray) -> dict[str, np.ndarray]:
    """The five statistics of every scanpath as arrays (K,), keyed as `BehaviourStats`.

    Runs on new objects are the distinct objects (an object's first fixation always starts a
    run), so revisit runs = runs − distinct objects and refixations = length − runs.
    """
    obj, n = paths.objects, paths.lengths
    if (n < 1).any():
        raise ValueError("behavioural statistics need a non-empty scanpath")
    inside = np.arange(obj.shape[1]) < n[:, None]
    run_starts = inside.copy()
    run_starts[:, 1:] &= obj[:, 1:] != obj[:, :-1]
    ordered = np.sort(np.where(inside, obj, np.iinfo(np.int64).max), axis=1)
    firsts = inside.copy()
    firsts[:, 1:] &= ordered[:, 1:] != ordered[:, :-1]
    n_runs, distinct = run_starts.sum(axis=1), firsts.sum(axis=1)
    last = obj[np.arange(len(obj)), n - 1]
    return {
        "target_found": (last == targets).astype(np.float64),
        "length": n.astype(np.float64),
        "search_ratio": distinct / n,
        "refixation_ratio": (n - n_runs) / n,
        "revisit_ratio": (n_runs - distinct) / n,
    }


def mean_behaviour(scanpaths: Sequence[Path], targets: Sequence[int]) -> BehaviourStats:
    """Return the per-statistic mean over scanpaths (each with its trial's target)."""
    if not scanpaths:
        raise ValueError("no scanpaths to average")
    if len(scanpaths) != len(targets):
        raise ValueError(f"{len(scanpaths)} scanpaths for {len(targets)} targets")
    stats = behaviour_arrays(PaddedPaths.from_lists(scanpaths), np.asarray(targets, dtype=np.int64))
    return BehaviourStats(**{k: float(np.mean(v)) for k, v in stats.items()})


def behaviour_delta(model: BehaviourStats, reference: BehaviourStats) -> float:
    """Return Δ = (1/5) Σ_k |m_k − g_k| / g_k (lower is better)."""
    m, g = asdict(model), asdict(reference)
    terms = [abs(m[k] - g[k]) / g[k] if g[k] != 0 else abs(m[k]) for k in g]
    return float(np.mean(terms))
