import numpy as np

from vitscope.scanpath.baselines import nearest_neighbour, random_order, similarity_greedy, simulator
from vitscope.scanpath.simulator import SearchGeometry, geometry
from vitscope.scanpath.trials import Trial


def _line_geometry(similarity: list[float], target: int) -> SearchGeometry:
    """Five objects on a line at x = 0..4 (object units), the image centre at x = 2."""
    centres = np.array([[x, 0.0] for x in range(5)])
    ahead = centres[None, :, 0] > centres[:, None, 0]
    return SearchGeometry(centres, np.array([2.0, 0.0]), np.array(similarity), ahead, target)


def test_nearest_neighbour_walks_out_from_the_centre() -> None:
    geo = _line_geometry([0.0] * 5, target=0)
    # from x=2: 2, then 1 (tie with 3 broken by the lower index), 0 = target -> stop
    assert nearest_neighbour(geo, np.random.default_rng(0), max_len=10) == [2, 1, 0]
    assert nearest_neighbour(geo, np.random.default_rng(0), max_len=2) == [2, 1]


def test_similarity_greedy_visits_the_most_similar_first() -> None:
    geo = _line_geometry([0.1, 0.9, 0.2, 0.5, 1.0], target=4)
    assert similarity_greedy(geo, np.random.default_rng(0), max_len=10) == [4]
    geo = _line_geometry([0.1, 0.9, 0.2, 0.95, 0.4], target=2)
    # score = similarity - 0.05 * distance. From x=2: 0.95-0.05 beats 0.9-0.05 -> 3.
    # From x=3: 0.9-0.10 -> 1. From x=1: 0.4-0.15 beats 0.2-0.05 -> 4. Then 2, the target.
    assert similarity_greedy(geo, np.random.default_rng(0), max_len=10) == [3, 1, 4, 2]


def test_random_order_is_a_permutation_prefix_ending_at_the_target() -> None:
    geo = _line_geometry([0.0] * 5, target=3)
    for seed in range(20):
        path = random_order(geo, np.random.default_rng(seed), max_len=4)
        assert len(set(path)) == len(path) <= 4
        assert 3 not in path[:-1]


def test_simulator_baseline_gives_object_indices(trial: Trial) -> None:
    path = simulator()(geometry(trial), np.random.default_rng(0), 5)
    assert path and all(0 <= i < trial.n for i in path)
