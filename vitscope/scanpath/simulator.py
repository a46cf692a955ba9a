"""A simulated human searcher: object-level scanpaths on search trials.

Each next fixation is drawn from a softmax over objects of

    w_similarity · sim(o, target) · exp(−|o − here| / acuity)     guidance by the target
    − w_distance · |o − here|                                       short saccades
    − w_centre · |o − centre|       (first `centre_fixations`)     centre bias
    + w_reading · ahead(here → o)                                   reading order
    − ior · visited(o)                                              inhibition of return

with distances in object units (the median distance between neighbouring object centres),
`here` the current fixation (the image centre before the first one) and `ahead` = 1 for
objects later in reading order (right of the current one in its row band, or in a row
below). The exp(−d / acuity) factor is peripheral vision: target similarity is seen less
well far from the fixation. Visited objects are penalised, not forbidden, so revisits
happen.

Refixations: after k fixations in a row on the current object the searcher stays on it with
probability p_refixation · refix_decay^(k−1) instead of drawing from the softmax. The decay
keeps runs short, as in human data, and keeps "stay forever" from being the most likely
continuation (which would make greedy decoding of a model trained on these scanpaths loop).

Ending: a fixation on the target detects it with probability `p_detect` and ends the search;
otherwise the searcher gives up with probability `p_give_up` after each fixation, and stops
at `max_len`. So some searches end without the target.

Deterministic for a seed: one `numpy.random.Generator` per (seed, trial, subject), drawn in
a fixed order. The defaults of `SearcherParams` are calibrated to the human statistics of
the 6×14 Amazon book-cover grids; `vitscope/scanpath/calibrate.py` says how and what they reach.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vitscope.scanpath.trials import ScanpathRecord, Trial, target_similarity


@dataclass(frozen=True)
class SearcherParams:
    """Parameters of the simulated searcher (defaults: calibrated, see module docstring)."""

    w_similarity: float = 9.67
    acuity: float = 9.139
    w_distance: float = 1.2
    w_centre: float = 3.0
    centre_fixations: int = 3
    w_reading: float = 0.5
    ior: float = 4.5
    p_refixation: float = 0.2609
    refix_decay: float = 0.4
    p_detect: float = 0.9325
    p_give_up: float = 0.01134
    max_len: int = 60


@dataclass(frozen=True)
class SearchGeometry:
    """What the searcher needs of a trial, precomputed once.

    `centres` (N, 2) and `start` (2,) are in object units; `similarity` (N,) to the target;
    `ahead` (N, N) bool, ahead[i, j] = j follows i in reading order.
    """

    centres: np.ndarray
    start: np.ndarray
    similarity: np.ndarray
    ahead: np.ndarray
    target: int


def object_unit(centres: np.ndarray) -> float:
    """Median distance from each object centre to its nearest neighbour (pixels)."""
    if len(centres) < 2:
        return 1.0
    d = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return float(max(np.median(d.min(axis=1)), 1e-6))


def geometry(trial: Trial, similarity: np.ndarray | None = None) -> SearchGeometry:
    """Return the searcher's view of a trial (similarity computed unless given)."""
    unit = object_unit(trial.centres)
    centres = trial.centres / unit
    start = np.array([trial.image_size[1] / 2, trial.image_size[0] / 2]) / unit
    dx = centres[None, :, 0] - centres[:, None, 0]
    dy = centres[None, :, 1] - centres[:, None, 1]
    ahead = ((np.abs(dy) < 0.5) & (dx > 0)) | (dy >= 0.5)
    sim = target_similarity(trial) if similarity is None else similarity
    return SearchGeometry(centres, start, np.asarray(sim, np.float64), ahead, trial.target)


def _scores(
    geo: SearchGeometry, p: SearcherParams, current: int | None, visited: np.ndarray, step: int
) -> np.ndarray:
    """Logits (N,) of the next fixation when it is not a refixation."""
    here = geo.start if current is None else geo.centres[current]
    dist = np.linalg.norm(geo.centres - here, axis=1)
    score = p.w_similarity * geo.similarity * np.exp(-dist / p.acuity) - p.w_distance * dist
    if step < p.centre_fixations:
        score -= p.w_centre * np.linalg.norm(geo.centres - geo.start, axis=1)
    if current is not None:
        score += p.w_reading * geo.ahead[current]
        score[current] = -np.inf  # staying is decided by p_refixation alone
    return score - p.ior * visited


def _draw(score: np.ndarray, rng: np.random.Generator) -> int:
    prob = np.exp(score - score.max())
    return int(rng.choice(len(score), p=prob / prob.sum()))


def simulate_geometry(geo: SearchGeometry, params: SearcherParams, rng: np.random.Generator) -> list[int]:
    """Return one simulated scanpath (object indices, at least one fixation)."""
    n = len(geo.centres)
    visited = np.zeros(n, dtype=bool)
    path: list[int] = []
    current: int | None = None
    run = 0  # fixations in the current run on `current`
    while len(path) < params.max_len:
        stay = params.p_refixation * params.refix_decay ** max(run - 1, 0)
        if current is not None and (n == 1 or rng.random() < stay):
            nxt = current
        else:
            nxt = _draw(_scores(geo, params, current, visited, len(path)), rng)
        run = run + 1 if nxt == current else 1
        path.append(nxt)
        visited[nxt] = True
        current = nxt
        if nxt == geo.target and rng.random() < params.p_detect:
            break
        if rng.random() < params.p_give_up:
            break
    return path


def subject_rng(seed: int, trial_index: int, subject: int) -> np.random.Generator:
    """The generator of one simulated subject on one trial (independent streams)."""
    return np.random.default_rng([seed, trial_index, subject])


def simulate(
    trials: Sequence[Trial], subjects: int, params: SearcherParams | None = None, seed: int = 0
) -> list[ScanpathRecord]:
    """Simulate `subjects` searchers on every trial; returns records grouped trial by trial."""
    out: list[ScanpathRecord] = []
    for t, trial in enumerate(trials):
        paths = simulate_subjects(trial, t, subjects, params, seed)
        out.extend(ScanpathRecord(trial, tuple(p), subject=f"sim{s}") for s, p in enumerate(paths))
    return out


def simulate_subjects(
    trial: Trial, index: int, subjects: int, params: SearcherParams | None = None, seed: int = 0
) -> list[list[int]]:
    """The scanpaths of `subjects` searchers on trial number `index` (as `simulate` draws them)."""
    geo, p = geometry(trial), params or SearcherParams()
    return [simulate_geometry(geo, p, subject_rng(seed, index, s)) for s in range(subjects)]
