import pytest

from vitscope.errors import UserError
from worker.scanpath.datasets import group_by_trial, split_by_trial, synth_records


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
