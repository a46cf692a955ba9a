"""Localization scoring against hand-made maps and boxes, and the evaluation end to end."""

import json

import numpy as np
import pytest

from tests.utils.models import micro
from vitscope.cli import main as cli
from vitscope.contracts.errors import UserError
from vitscope.contracts.kinds.eigencam import EigenCamParams
from vitscope.vit.analysis.eigencam import Settings
from vitscope.vit.analysis.localization import (
    FRACTIONS,
    bootstrap,
    box_hits,
    box_iou,
    calibration_split,
    choose_fraction,
    evaluate,
    largest_component_box,
    map_box,
)
from vitscope.vit.data.geometry import as_geometry
from vitscope.vit.data.inputs import Batch, SynthSource


def as_list(box):
    """The box as a list; fails the test when there is no box."""
    assert box is not None
    return box.tolist()


def test_box_surrounds_the_largest_component_with_exclusive_ends():
    mask = np.zeros((10, 10), bool)
    mask[1:3, 1:3] = True  # 4 pixels
    mask[5:8, 4:9] = True  # 15 pixels
    assert as_list(largest_component_box(mask)) == [4, 5, 9, 8]
    assert largest_component_box(np.zeros((4, 4), bool)) is None


def test_diagonal_neighbours_form_one_component():
    mask = np.eye(5, dtype=bool)  # 5 pixels touching only at corners
    mask[0, 4] = mask[1, 4] = True  # a 2-pixel blob apart from the diagonal
    assert as_list(largest_component_box(mask)) == [0, 0, 5, 5]


def test_iou_of_hand_made_boxes():
    a = np.array([0, 0, 2, 2])
    assert box_iou(a, a) == 1.0
    assert box_iou(a, np.array([2, 0, 4, 2])) == 0.0  # touching edges share no pixel
    assert box_iou(a, np.array([0, 0, 2, 1])) == 0.5
    assert box_iou(a, np.array([1, 1, 3, 3])) == pytest.approx(1 / 7)


def test_threshold_is_inclusive_and_a_zero_map_finds_nothing():
    saliency = np.zeros((4, 4))
    saliency[0, 0], saliency[3, 3] = 1.0, 0.15
    assert as_list(map_box(saliency, 0.15)) == [0, 0, 1, 1]  # two 1-pixel regions: first one wins
    saliency[3, 2] = 0.15
    assert as_list(map_box(saliency, 0.15)) == [2, 3, 4, 4]
    assert as_list(map_box(saliency, 0.16)) == [0, 0, 1, 1]
    assert map_box(np.zeros((4, 4)), 0.5) is None


def test_hits_need_iou_of_at_least_one_half_at_each_fraction():
    saliency = np.zeros((8, 8))
    saliency[0:2, 0:4] = 1.0  # the object, 8 pixels
    saliency[4:8, 4:8] = 0.5  # a larger, dimmer region, 16 pixels
    truth = np.array([[0, 0, 4, 2]])
    hits = box_hits(saliency[None], truth, fractions=(0.25, 0.5, 0.55, 0.9))
    assert hits.tolist() == [[False, False, True, True]]
    half = np.array([[0, 0, 4, 4]])  # IoU of the object's box with this one is exactly 0.5
    assert box_hits(saliency[None], half, fractions=(0.9,)).tolist() == [[True]]
    assert box_hits(np.zeros((1, 8, 8)), truth, fractions=(0.5,)).tolist() == [[False]]


def test_calibration_split_is_seeded_disjoint_and_covers_every_image():
    calibration, held = calibration_split(10, 0.3, seed=4)
    assert len(calibration) == 3 and not set(calibration) & set(held)
    assert sorted([*calibration, *held]) == list(range(10))
    again, _ = calibration_split(10, 0.3, seed=4)
    np.testing.assert_array_equal(again, calibration)
    assert len(calibration_split(2, 0.01)[0]) == 1 and len(calibration_split(2, 0.99)[1]) == 1


def test_held_out_thresholds_never_use_the_evaluated_images():
    calibration, held = calibration_split(20, 0.3, seed=1)
    hits = np.zeros((20, len(FRACTIONS)), bool)
    hits[calibration, FRACTIONS.index(0.3)] = True  # calibration favours 0.3
    hits[held, FRACTIONS.index(0.7)] = True  # the evaluated images would favour 0.7
    assert FRACTIONS[choose_fraction(hits, calibration)] == 0.3
    flipped = hits.copy()
    flipped[held] = ~flipped[held]  # whatever the evaluated images say, the choice stays
    assert choose_fraction(flipped, calibration) == choose_fraction(hits, calibration)


def test_bootstrap_interval_holds_the_mean_and_ignores_nan():
    values = np.array([0.0, 1.0] * 20 + [np.nan])
    est = bootstrap(values, seed=0)
    lo, hi = est["interval"]
    assert est["mean"] == pytest.approx(0.5) and lo < 0.5 < hi and hi - lo < 0.5
    assert bootstrap(np.full(3, np.nan))["mean"] is None


def test_evaluate_reports_every_method_held_out_with_intervals():
    lm = micro("vit")
    settings = Settings.of(lm, EigenCamParams())
    report = evaluate(lm, SynthSource(6, seed=3), settings, batch_size=4, steps=4)
    assert report["images"] == 6 and (report["calibration_images"], report["held_out_images"]) == (2, 4)
    assert set(report["eigencam"]) == {"0", "1"}
    assert report["gradcam"]["layer"] == 0
    assert report["best_layer"] in (0, 1)
    for r in (
        *report["eigencam"].values(),
        report["rollout"],
        report["gradcam"],
        report["random"],
        report["centre"],
    ):
        for metric in (
            "localization",
            "localization_with_class",
            "mass_in_box",
            "deletion_auc",
            "insertion_auc",
        ):
            lo, hi = r[metric]["interval"]
            assert lo <= r[metric]["mean"] <= hi
        assert r["localization_with_class"]["mean"] <= r["localization"]["mean"] + 1e-9
        assert r["threshold"] in FRACTIONS and len(r["calibration_curve"]) == len(FRACTIONS)
    versus = report["best_layer_vs_random"]
    assert set(versus) == {
        "localization",
        *("mass_in_box", "pointing_hit", "deletion_auc", "insertion_auc"),
        "better_on_every_metric",
    }


class NoBoxes:
    def __len__(self):
        return 2

    def batches(self, batch_size, size):
        images = np.zeros((2, *as_geometry(size).size, 3), np.uint8)
        yield Batch(images, np.zeros(2, np.int64), np.full((2, 4), np.nan), np.arange(2))


def test_evaluate_refuses_images_without_boxes():
    lm = micro("vit")
    with pytest.raises(UserError, match="ground-truth box"):
        evaluate(lm, NoBoxes(), Settings.of(lm, EigenCamParams()))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cli_prints_one_json_object(capsys, dtype):
    status = cli(
        [
            "eval-localization",
            *("random:vit-micro", "--dataset", "synthscenes:3", "--device", "cpu", "--steps", "2", "--json"),
            *("--dtype", dtype),
        ]
    )
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    assert {"eigencam", "rollout", "gradcam", "random", "centre", "best_layer"} <= set(report)
    assert report["dataset"] == "synthscenes:3:seed=0" and report["dtype"] == dtype
