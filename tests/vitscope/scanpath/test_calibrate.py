from vitscope.scanpath.calibrate import calibrate, simulated_stats
from vitscope.scanpath.metrics import HUMAN_AMAZON, behaviour_delta
from vitscope.scanpath.simulator import SearcherParams, geometry
from vitscope.scanpath.trials import trial_from_scene

from .conftest import grid_scene


def test_calibration_never_makes_delta_worse_and_is_deterministic() -> None:
    geos = [geometry(trial_from_scene(grid_scene(rows=3, cols=4, target=t), f"t{t}")) for t in (0, 5, 11)]
    start = SearcherParams(p_refixation=0.6)  # far from the human refixation ratio
    before = behaviour_delta(simulated_stats(geos, start, subjects=3), HUMAN_AMAZON)
    params, after = calibrate(geos, start=start, subjects=3, rounds=2, names=("p_refixation",))
    assert after < before
    assert params.p_refixation < 0.6 and params.w_similarity == start.w_similarity
    assert calibrate(geos, start=start, subjects=3, rounds=2, names=("p_refixation",)) == (params, after)
