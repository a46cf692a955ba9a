from dataclasses import replace

import numpy as np

from vitscope.scanpath.metrics import runs
from vitscope.scanpath.simulator import SearcherParams, geometry, object_unit, simulate, simulate_geometry
from vitscope.scanpath.trials import Trial, trial_from_scene

from .conftest import grid_scene


def _paths(trial: Trial, params: SearcherParams, seed: int, subjects: int = 20) -> list[tuple[int, ...]]:
    return [r.scanpath for r in simulate([trial], subjects, params, seed=seed)]


def test_simulator_is_deterministic_for_a_seed(trial: Trial) -> None:
    params = SearcherParams()
    assert _paths(trial, params, seed=3) == _paths(trial, params, seed=3)
    assert _paths(trial, params, seed=3) != _paths(trial, params, seed=4)


def test_detection_ends_the_scanpath_on_the_target(trial: Trial) -> None:
    params = replace(SearcherParams(), p_detect=1.0, p_give_up=0.0, max_len=100)
    for path in _paths(trial, params, seed=0):
        assert path[-1] == trial.target
        assert trial.target not in path[:-1]  # the first fixation on it ends the search


def test_without_refixations_no_run_is_longer_than_one(trial: Trial) -> None:
    params = replace(SearcherParams(), p_refixation=0.0)
    assert all(n == 1 for p in _paths(trial, params, seed=1) for _, n in runs(p))


def test_always_refixating_stays_on_the_first_object(trial: Trial) -> None:
    params = replace(
        SearcherParams(), p_refixation=1.0, refix_decay=1.0, p_detect=0.0, p_give_up=0.0, max_len=5
    )
    for path in _paths(trial, params, seed=2):
        assert len(set(path)) == 1 and len(path) == 5


def test_refixation_runs_shorten_with_the_decay(trial: Trial) -> None:
    params = replace(SearcherParams(), p_refixation=1.0, refix_decay=0.0, p_detect=0.0, max_len=9)
    for path in _paths(trial, params, seed=5):
        assert all(n == 2 for _, n in runs(path)[:-1])  # always one refixation, never a second


def test_give_up_and_max_len_end_searches_without_the_target() -> None:
    trial = trial_from_scene(grid_scene(rows=4, cols=6, target=23), "wide")
    params = replace(SearcherParams(), p_detect=0.0, max_len=7)
    paths = _paths(trial, params, seed=0)
    assert all(1 <= len(p) <= 7 for p in paths)
    assert any(len(p) < 7 for p in paths)  # some give up before the cap


def test_first_fixations_favour_the_centre() -> None:
    trial = trial_from_scene(grid_scene(rows=5, cols=5, target=0), "centre")
    params = replace(SearcherParams(), w_similarity=0.0)
    geo = geometry(trial)
    firsts = [simulate_geometry(geo, params, np.random.default_rng(s))[0] for s in range(200)]
    assert np.bincount(firsts, minlength=25).argmax() == 12  # the middle object


def test_object_unit_is_the_neighbour_distance(trial: Trial) -> None:
    assert object_unit(trial.centres) == 20.0
