import math

import numpy as np
import pytest

from worker.scanpath.metrics import (
    HUMAN_AMAZON,
    BehaviourStats,
    behaviour_delta,
    behaviour_stats,
    mean_behaviour,
    multimatch,
    multimatch_scores,
    runs,
    sequence_score,
    sequence_scores,
)


@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [
        ([1, 2, 3, 4], [1, 3, 4], 3 / 4),  # align 1-1, gap, 3-3, 4-4
        ([5, 5, 6], [6, 5], 1 / 3),  # only one of 5 or 6 can be matched in order
        ([1, 2], [2, 1], 1 / 2),
        ([7, 8, 9], [7, 8, 9], 1.0),
        ([1, 2], [3, 4, 5, 6], 0.0),
        ([], [], 1.0),
        ([], [1], 0.0),
    ],
)
def test_sequence_score_hand_examples(pred: list[int], gt: list[int], expected: float) -> None:
    assert sequence_score(pred, gt) == pytest.approx(expected)


def test_sequence_scores_batched_equals_pairwise() -> None:
    rng = np.random.default_rng(0)
    preds = [rng.integers(0, 5, rng.integers(1, 9)).tolist() for _ in range(50)]
    gts = [rng.integers(0, 5, rng.integers(1, 9)).tolist() for _ in range(50)]
    batched = sequence_scores(preds, gts)
    assert batched == pytest.approx([sequence_score(p, g) for p, g in zip(preds, gts, strict=True)])


def test_multimatch_aligns_one_saccade_with_two_equal_ones() -> None:
    # P saccades: (10,0) from (0,0), (0,10) from (10,0).
    # G saccades: (10,0) from (0,0), (10,0) from (10,0), (0,10) from (20,0).
    # Cheapest path pairs P1-G1, P1-G2, P2-G3: every vector difference is 0;
    # start-point distances 0, 10, 10 -> median 10 -> position 1 - 10/100.
    p = np.array([[0, 0], [10, 0], [10, 10]], float)
    g = np.array([[0, 0], [10, 0], [20, 0], [20, 10]], float)
    got = multimatch(p, g, diag=100.0)
    assert got == pytest.approx({"vector": 1.0, "direction": 1.0, "length": 1.0, "position": 0.9})


def test_multimatch_perpendicular_saccades() -> None:
    # u = (10,0), v = (0,10): |u-v| = sqrt(200); angle pi/2; equal lengths; same start.
    got = multimatch(np.array([[0, 0], [10, 0]], float), np.array([[0, 0], [0, 10]], float), diag=100.0)
    assert got["vector"] == pytest.approx(1 - math.sqrt(200) / 200)
    assert got["direction"] == pytest.approx(0.5)
    assert got["length"] == pytest.approx(1.0)
    assert got["position"] == pytest.approx(1.0)


def test_multimatch_single_fixation_is_a_zero_saccade() -> None:
    # both are zero vectors; their starts are 50 px apart (3-4-5 triangle)
    got = multimatch(np.array([[0, 0]], float), np.array([[30, 40], [30, 40]], float), diag=100.0)
    assert got == pytest.approx({"vector": 1.0, "direction": 1.0, "length": 1.0, "position": 0.5})


def test_multimatch_batch_keeps_pair_order() -> None:
    a = np.array([[0, 0], [10, 0]], float)
    b = np.array([[0, 0], [0, 10]], float)
    long = np.array([[0, 0], [10, 0], [20, 0], [30, 0], [40, 0]], float)
    got = multimatch_scores([long, a, a], [long, b, a], diag=np.array([100.0, 100.0, 100.0]))
    assert got["direction"] == pytest.approx([1.0, 0.5, 1.0])


def test_runs_group_consecutive_fixations() -> None:
    assert runs([1, 1, 2, 3, 1, 1, 5]) == [(1, 2), (2, 1), (3, 1), (1, 2), (5, 1)]


def test_behaviour_stats_hand_example() -> None:
    # runs (1,2) (2,1) (3,1) (1,2) (5,1): new runs 1,2,3,5; the second run on 1 is a revisit;
    # refixations (2-1) + (2-1) = 2; length 7; last fixation on the target 5.
    s = behaviour_stats([1, 1, 2, 3, 1, 1, 5], target=5)
    assert s == BehaviourStats(1.0, 7.0, 4 / 7, 2 / 7, 1 / 7)
    assert s.search_ratio + s.refixation_ratio + s.revisit_ratio == pytest.approx(1.0)
    assert behaviour_stats([1, 2], target=1).target_found == 0.0


def test_mean_behaviour_averages_each_statistic() -> None:
    m = mean_behaviour([[3], [1, 1, 2, 1]], [3, 9])
    # [3]: found, len 1, search 1; [1,1,2,1]: not found, len 4, search 2/4, refix 1/4, revisit 1/4
    assert m == BehaviourStats(0.5, 2.5, 0.75, 0.125, 0.125)


def test_behaviour_delta_hand_example() -> None:
    assert behaviour_delta(HUMAN_AMAZON, HUMAN_AMAZON) == 0.0
    m = BehaviourStats(0.42, 29.0, 0.78, 0.17, 0.10)  # relative errors 0.5, 1, 0, 0, 1
    assert behaviour_delta(m, HUMAN_AMAZON) == pytest.approx(0.5)
    zero_ref = BehaviourStats(1.0, 1.0, 1.0, 1.0, 0.0)
    assert behaviour_delta(BehaviourStats(1.0, 1.0, 1.0, 1.0, 0.25), zero_ref) == pytest.approx(0.05)
