import numpy as np
import pytest

from vitscope.contracts.errors import UserError
from vitscope.scanpath.datasets import (
    SynthTrials,
    group_by_trial,
    split_by_trial,
    synth_records,
    synth_references,
)


def test_synthsearch_records_are_deterministic_and_grouped() -> None:
    a = synth_records("synthsearch:3:seed=1:layout=grid:3x4", subjects=2)
    b = synth_records("synthsearch:3:seed=1:layout=grid:3x4", subjects=2)
    assert [r.scanpath for r in a] == [r.scanpath for r in b]
    groups = group_by_trial(a)
    assert len(groups) == 3 and all(len(paths) == 2 for _, paths in groups)
    assert groups[0][0].grid == (3, 4) and groups[0][0].n == 12


def test_split_is_by_trial() -> None:
    records = synth_records("synthsearch:10:seed=2:layout=grid:2x3", subjects=2)
    train, val, test = split_by_trial(records, seed=0)
    ids = [{id(r.trial) for r in part} for part in (train, val, test)]
    assert [len(s) for s in ids] == [8, 1, 1]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])


def test_other_dataset_specs_are_refused() -> None:
    with pytest.raises(UserError, match="synthsearch:N"):
        synth_records("synthscenes:10")


def test_lazy_trials_and_references_match_the_records() -> None:
    spec = "synthsearch:3:seed=1:layout=grid:3x4"
    groups = group_by_trial(synth_records(spec, subjects=2))
    trials = SynthTrials(spec)
    assert len(trials) == 3 and [t.trial_id for t in trials[1:]] == [g.trial_id for g, _ in groups[1:]]
    assert np.array_equal(trials[-1].image, groups[2][0].image)
    assert synth_references(trials, subjects=2) == [[list(p) for p in paths] for _, paths in groups]
