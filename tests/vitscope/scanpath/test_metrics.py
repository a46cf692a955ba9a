import math

import numpy as np
import pytest

from vitscope.scanpath.metrics import (
    HUMAN_AMAZON,
    BehaviourStats,
    PaddedPaths,
    Saccades,
    behaviour_arrays,
    behaviour_delta,
    behaviour_stats,
    mean_behaviour,
    multimatch,
    multimatch_scores,
    pair_multimatch,
    pair_sequence_scores,
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


def _random_paths(rng: np.random.Generator, k: int, longest: int, objects: int = 6) -> list[list[int]]:
    return [rng.integers(0, objects, rng.integers(1, longest + 1)).tolist() for _ in range(k)]


def _lcs(a: list[int], b: list[int]) -> int:
    """Textbook longest common subsequence."""
    row = [0] * (len(b) + 1)
    for x in a:
        diag = 0
        for j, y in enumerate(b):
            diag, row[j + 1] = row[j + 1], diag + 1 if x == y else max(row[j + 1], row[j])
    return row[-1]


@pytest.mark.parametrize(("pred_max", "gt_max"), [(12, 12), (90, 20), (20, 90), (90, 90)])
def test_bit_parallel_lcs_equals_the_textbook_lcs(pred_max: int, gt_max: int) -> None:
    # one side longer than a 64-bit word swaps sides; both longer falls back to a DP
    rng = np.random.default_rng(pred_max + gt_max)
    preds, gts = _random_paths(rng, 60, pred_max), _random_paths(rng, 60, gt_max)
    expected = [_lcs(p, g) / max(len(p), len(g)) for p, g in zip(preds, gts, strict=True)]
    assert sequence_scores(preds, gts).tolist() == expected


def test_pairs_index_shared_scanpaths() -> None:
    rng = np.random.default_rng(1)
    preds, refs = _random_paths(rng, 30, 15, 84), _random_paths(rng, 4, 15, 84)
    pi, ri = np.repeat(np.arange(30), 4), np.tile(np.arange(4), 30)
    got = pair_sequence_scores(PaddedPaths.from_lists(preds), PaddedPaths.from_lists(refs), pi, ri)
    assert np.array_equal(got, sequence_scores([preds[i] for i in pi], [refs[i] for i in ri]))
    # grid centres: many saccades are equal, so alignment ties are common
    centres = np.stack(np.meshgrid(np.arange(14) * 32.0, np.arange(6) * 32.0), -1).reshape(-1, 2)
    pxy, rxy = [centres[p] for p in preds], [centres[r] for r in refs]
    got_mm = pair_multimatch(Saccades.from_lists(pxy), Saccades.from_lists(rxy), pi, ri, 500.0)
    one_by_one = [multimatch(pxy[i], rxy[j], 500.0) for i, j in zip(pi, ri, strict=True)]
    for k in got_mm:
        assert np.array_equal(got_mm[k], [m[k] for m in one_by_one])


def test_behaviour_arrays_equal_the_per_scanpath_statistics() -> None:
    rng = np.random.default_rng(2)
    paths, targets = _random_paths(rng, 100, 20, 5), rng.integers(0, 5, 100)
    arrays = behaviour_arrays(PaddedPaths.from_lists(paths), targets)
    for k, (path, target) in enumerate(zip(paths, targets, strict=True)):
        assert {key: a[k] for key, a in arrays.items()} == behaviour_stats(path, int(target)).as_dict()
