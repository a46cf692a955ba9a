from dataclasses import fields, replace

import numpy as np
import pytest
import torch

from vitscope.contracts.errors import UserError
from vitscope.scanpath.batching import SceneBank, collate_trials, trial_tensors
from vitscope.scanpath.model import OATConfig
from vitscope.scanpath.trials import Trial, trial_from_scene

from .conftest import grid_scene

CONFIG = OATConfig(d_model=16, heads=2, crop_size=(30, 30))


def _trials() -> list[Trial]:
    """Scenes of 6, 4 and 9 objects."""
    shapes = [(2, 3, 4), (2, 2, 1), (3, 3, 8)]
    return [trial_from_scene(grid_scene(rows=r, cols=c, target=t), f"{r}x{c}") for r, c, t in shapes]


@pytest.mark.parametrize("index", [[0, 1], [1], [2, 0, 1], [1, 1]])
def test_bank_batches_equal_collated_batches(index: list[int]) -> None:
    trials = _trials()
    bank = SceneBank.from_trials(trials, CONFIG)
    got = bank.take(torch.tensor(index), np.array(index))
    expected = collate_trials([trial_tensors(trials[i], CONFIG) for i in index])
    for f in fields(expected):
        assert torch.equal(getattr(got, f.name), getattr(expected, f.name)), f.name  # padded to own N


def test_bank_slices_need_no_host_index() -> None:
    bank = SceneBank.from_trials(_trials(), CONFIG)
    assert bank.take(slice(0, 2)).n_objects == 6 and len(bank) == 3
    with pytest.raises(TypeError, match="host_index"):
        bank.take(torch.tensor([0]))


def test_cells_outside_the_positional_table_are_refused_on_the_host(trial: Trial) -> None:
    with pytest.raises(UserError, match=r"grid cells reach \(1, 2\) .* table has 2 rows"):
        trial_tensors(trial, replace(CONFIG, pe_size=2))
