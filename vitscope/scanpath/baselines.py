"""Baseline scanpath predictors, all in OAT's format: a list of 0-based object indices.

Every baseline takes a trial's `SearchGeometry` (object centres in object units, the image
centre, similarity to the target), a numpy Generator and a length cap, and stops at the
first fixation on the target or at the cap:

* `random_order`: objects in a uniformly random order;
* `nearest_neighbour`: from the object nearest the image centre, always the nearest
  unvisited object (deterministic);
* `similarity_greedy`: from the image centre, always the unvisited object with the highest
  similarity to the target minus `SIMILARITY_DISTANCE` per object unit of saccade (the
  distance only breaks near-ties, so similar objects are visited first; deterministic);
* `simulator`: the simulated searcher (`simulator.py`), with its own stopping rules.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vitscope.scanpath.simulator import SearcherParams, SearchGeometry, simulate_geometry

Baseline = Callable[[SearchGeometry, np.random.Generator, int], list[int]]
SIMILARITY_DISTANCE = 0.05


def _until_target(order: list[int], target: int, max_len: int) -> list[int]:
    """The order cut after the first fixation on the target, at most `max_len` long."""
    out = order[: max(max_len, 1)]
    return out[: out.index(target) + 1] if target in out else out


def random_order(geo: SearchGeometry, rng: np.random.Generator, max_len: int) -> list[int]:
    """Objects in random order until the target or `max_len`."""
    order = rng.permutation(len(geo.centres)).tolist()
    return _until_target(order, geo.target, max_len)


def _greedy(geo: SearchGeometry, score: Callable[[np.ndarray], np.ndarray], max_len: int) -> list[int]:
    """Repeatedly take the unvisited object with the highest score(here); ties to the lowest index."""
    visited = np.zeros(len(geo.centres), dtype=bool)
    path: list[int] = []
    here = geo.start
    while len(path) < max(max_len, 1) and not visited.all():
        nxt = int(np.argmax(np.where(visited, -np.inf, score(here))))
        path.append(nxt)
        visited[nxt] = True
        here = geo.centres[nxt]
        if nxt == geo.target:
            break
    return path


def nearest_neighbour(geo: SearchGeometry, rng: np.random.Generator, max_len: int) -> list[int]:
    """Nearest unvisited object, starting nearest the image centre."""
    return _greedy(geo, lambda here: -np.linalg.norm(geo.centres - here, axis=1), max_len)


def similarity_greedy(geo: SearchGeometry, rng: np.random.Generator, max_len: int) -> list[int]:
    """Most target-similar unvisited object, near-ties broken by saccade length."""

    def score(here: np.ndarray) -> np.ndarray:
        return geo.similarity - SIMILARITY_DISTANCE * np.linalg.norm(geo.centres - here, axis=1)

    return _greedy(geo, score, max_len)


def simulator(params: SearcherParams | None = None) -> Baseline:
    """The simulated searcher as a baseline (it ignores the cap: it has its own `max_len`)."""
    p = params or SearcherParams()

    def run(geo: SearchGeometry, rng: np.random.Generator, max_len: int) -> list[int]:
        return simulate_geometry(geo, p, rng)

    return run


DETERMINISTIC: dict[str, Baseline] = {"nearest": nearest_neighbour, "similarity": similarity_greedy}
STOCHASTIC: dict[str, Baseline] = {"random": random_order, "simulator": simulator()}
