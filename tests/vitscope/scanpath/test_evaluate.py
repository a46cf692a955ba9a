from collections.abc import Sequence
from typing import overload

import numpy as np
import pytest
import torch

from vitscope.scanpath.baselines import nearest_neighbour
from vitscope.scanpath.evaluate import baseline_predictions, evaluate, length_cap, score_predictions
from vitscope.scanpath.metrics import MM_KEYS, behaviour_delta, mean_behaviour, multimatch, sequence_score
from vitscope.scanpath.model import OAT, OATConfig
from vitscope.scanpath.simulator import geometry, simulate_subjects
from vitscope.scanpath.trials import Trial, trial_from_scene

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
    scores = evaluate(None, trials, refs, samples=4, seed=0).methods
    assert set(scores) == {"random", "simulator", "nearest", "similarity"}
    assert scores["nearest"].sequence_score == pytest.approx(1.0)  # the references are its own paths
    assert scores["nearest"].delta == pytest.approx(0.0)
    assert scores["random"].sequence_score < 1.0


def _model() -> OAT:
    torch.manual_seed(0)
    config = OATConfig(
        d_model=16, encoder_layers=1, decoder_layers=1, heads=2, ffn=16, crop_size=(30, 30), max_len=10
    )
    return OAT(config).eval()


def _scene_trials(n: int) -> tuple[list[Trial], list[list[list[int]]]]:
    """n 3x3 trials with two simulated reference scanpaths each."""
    trials = [trial_from_scene(grid_scene(rows=3, cols=3, target=k % 9), f"t{k}") for k in range(n)]
    return trials, [simulate_subjects(t, k, 2, seed=1) for k, t in enumerate(trials)]


def test_chunked_evaluation_equals_unchunked_exactly() -> None:
    trials, refs = _scene_trials(7)
    model = _model()
    # rows 6 // samples 3: OAT decodes two scenes at a time, whatever the chunk
    whole = evaluate(model, trials, refs, samples=3, seed=4, chunk=100, rows=6)
    for chunk in (1, 2, 5):
        assert evaluate(model, trials, refs, samples=3, seed=4, chunk=chunk, rows=6) == whole
    assert set(whole.methods) == {"oat_greedy", "oat_sampled", "random", "simulator", "nearest", "similarity"}


def test_streamed_scores_equal_the_all_pairs_definition() -> None:
    """Per-trial means of every (prediction, reference) pair, computed pair by pair."""
    trials, refs = _scene_trials(5)
    got = evaluate(None, trials, refs, samples=3, seed=2, chunk=2)
    preds = baseline_predictions(trials, 3, 2, length_cap(refs))
    for name, paths in preds.items():
        per_trial = []
        for t, trial in enumerate(trials):
            pairs = [(p, r) for p in paths[t] for r in refs[t]]
            ss = [sequence_score(p, r) for p, r in pairs]
            mm = [multimatch(trial.centres[p], trial.centres[r], trial.diagonal) for p, r in pairs]
            per_trial.append([np.mean(ss), *(np.mean([m[k] for m in mm]) for k in MM_KEYS)])
        targets = [t.target for t, ps in zip(trials, paths, strict=True) for _ in ps]
        behaviour = mean_behaviour([p for ps in paths for p in ps], targets)
        reference = mean_behaviour(
            [r for rs in refs for r in rs], [t.target for t in trials for _ in range(2)]
        )
        scores = got.methods[name]
        expected = np.mean(per_trial, axis=0)
        assert [scores.sequence_score, *scores.multimatch.values()] == pytest.approx(expected, rel=1e-12)
        assert scores.behaviour.as_dict() == pytest.approx(behaviour.as_dict(), rel=1e-12)
        assert scores.delta == pytest.approx(behaviour_delta(behaviour, reference), rel=1e-12)


class _CountingTrials(Sequence[Trial]):
    """A sequence of trials that records which trial is read when."""

    def __init__(self, trials: list[Trial]) -> None:
        self.trials, self.reads = trials, list[int]()

    def __len__(self) -> int:
        return len(self.trials)

    @overload
    def __getitem__(self, i: int) -> Trial: ...

    @overload
    def __getitem__(self, i: slice) -> list[Trial]: ...

    def __getitem__(self, i: int | slice) -> Trial | list[Trial]:
        if isinstance(i, slice):
            raise AssertionError("evaluate reads trials one index at a time")
        self.reads.append(i)
        return self.trials[i]


def test_evaluate_reads_each_trial_once_in_order() -> None:
    trials, refs = _scene_trials(5)
    lazy = _CountingTrials(trials)
    evaluate(None, lazy, refs, samples=2, chunk=2)
    assert lazy.reads == [0, 1, 2, 3, 4]
