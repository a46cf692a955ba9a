"""Scanpath datasets: SynthSearch scenes with simulated searchers, splits, grouping by trial.

`synthsearch:N[:seed=S][:layout=L]` gives N SynthSearch scenes; each gets `subjects`
simulated scanpaths drawn from the (calibrated) searcher with the dataset seed, so the same
spec always yields the same records. Splits are by trial (scene), never by record, so no
scene of the validation or test split is seen in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

import numpy as np

from vitscope.contracts.datasets import parse_search_spec
from vitscope.contracts.errors import UserError
from vitscope.scanpath.simulator import SearcherParams, simulate, simulate_subjects
from vitscope.scanpath.trials import ScanpathRecord, Trial, trial_from_scene
from vitscope.vit.data.synthscenes import SynthSearch

SPLIT = (0.8, 0.1, 0.1)


class SynthTrials(Sequence[Trial]):
    """The trials of a `synthsearch:` spec, rendered when read (memory independent of N)."""

    def __init__(self, spec: str) -> None:
        if not spec.startswith("synthsearch:"):
            raise UserError(
                f"dataset {spec!r}: scanpath datasets are 'synthsearch:N[:seed=S][:layout=grid:RxC]'"
            )
        n, self.seed, layout = parse_search_spec(spec)
        self.scenes = SynthSearch(n, seed=self.seed, layout=layout)

    def __len__(self) -> int:
        return len(self.scenes)

    @overload
    def __getitem__(self, i: int) -> Trial: ...

    @overload
    def __getitem__(self, i: slice) -> list[Trial]: ...

    def __getitem__(self, i: int | slice) -> Trial | list[Trial]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        k = range(len(self))[i]
        return trial_from_scene(self.scenes[k], f"synthsearch-{self.seed}-{k}")


def synth_trials(spec: str) -> tuple[list[Trial], int]:
    """Return (the trials of a `synthsearch:` spec, its seed)."""
    trials = SynthTrials(spec)
    return list(trials), trials.seed


def synth_records(spec: str, subjects: int = 6, params: SearcherParams | None = None) -> list[ScanpathRecord]:
    """Return `subjects` simulated scanpaths on every scene of the spec (grouped by trial)."""
    trials, seed = synth_trials(spec)
    return simulate(trials, subjects, params, seed=seed)


def synth_references(
    trials: SynthTrials, subjects: int = 6, params: SearcherParams | None = None
) -> list[list[list[int]]]:
    """The simulated scanpaths of `synth_records`, per trial, rendering one scene at a time."""
    return [simulate_subjects(t, k, subjects, params, trials.seed) for k, t in enumerate(trials)]


def group_by_trial(records: Sequence[ScanpathRecord]) -> list[tuple[Trial, list[tuple[int, ...]]]]:
    """Return [(trial, its scanpaths)] in first-seen order; trials compared by identity."""
    groups: dict[int, tuple[Trial, list[tuple[int, ...]]]] = {}
    for r in records:
        groups.setdefault(id(r.trial), (r.trial, []))[1].append(r.scanpath)
    return list(groups.values())


def split_by_trial(
    records: Sequence[ScanpathRecord], seed: int = 0, fractions: tuple[float, float, float] = SPLIT
) -> tuple[list[ScanpathRecord], list[ScanpathRecord], list[ScanpathRecord]]:
    """Randomly split records into (train, val, test) by trial; each split gets >= 1 trial when
    there are at least three trials."""
    keys = list(dict.fromkeys(id(r.trial) for r in records))
    if len(keys) < 2:
        raise UserError(f"need at least 2 scenes to split into train and validation, got {len(keys)}")
    order = np.random.default_rng(seed).permutation(len(keys))
    n_val = max(1, round(fractions[1] * len(keys)))
    n_test = max(1, round(fractions[2] * len(keys))) if len(keys) >= 3 else 0
    n_train = max(1, len(keys) - n_val - n_test)
    part = {keys[k]: 0 if j < n_train else 1 if j < n_train + n_val else 2 for j, k in enumerate(order)}
    out: tuple[list[ScanpathRecord], ...] = ([], [], [])
    for r in records:
        out[part[id(r.trial)]].append(r)
    return out[0], out[1], out[2]
