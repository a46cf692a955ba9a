import numpy as np
import pytest

from worker.scanpath.baselines import nearest_neighbour
from worker.scanpath.evaluate import evaluate, score_predictions
from worker.scanpath.simulator import geometry
from worker.scanpath.trials import Trial, trial_from_scene

from .conftest import grid_scene


def _trials() -> list[Trial]:
    return [trial_from_scene(grid_scene(rows=3, cols=3, target=t), f"t{t}") for t in (0, 8)]


def test_scores_average_all_pairs_per_trial_then_trials() -> None:
    trials = _trials()
    refs = [[[4, 1, 0]], [[4, 5, 5, 8], [4, 7, 8]]]
    got = score_predictions(trials, [[[4, 1, 0]], [[4, 5, 5, 8]]], refs)
    # trial 0: identical -> 1. Trial 1: 1 with the first reference; LCS(4558, 478) = 2 -> 2/4
    assert got.sequence_score == pytest.approx((1.0 + (1.0 + 0.5) / 2) / 2)
    assert got.multimatch["position"] < 1.0
    # two predictions on trial 1: four pairs (1, 0.5, 0.5, 1)
    assert score_predictions(trials, refs, refs).sequence_score == pytest.approx((1.0 + 0.75) / 2)


def test_evaluate_without_a_model_scores_every_baseline() -> None:
    trials = _trials()
    refs = [[nearest_neighbour(geometry(t), np.random.default_rng(0), 3)] for t in trials]
    scores = evaluate(None, trials, refs, samples=4, seed=0)
    assert set(scores) == {"random", "simulator", "nearest", "similarity"}
    assert scores["nearest"].sequence_score == pytest.approx(1.0)  # the references are its own paths
    assert scores["nearest"].delta == pytest.approx(0.0)
    assert scores["random"].sequence_score < 1.0
