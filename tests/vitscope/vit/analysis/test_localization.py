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
    Tally,
    box_hits,
    box_iou,
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


def test_tally_reports_best_threshold_customary_value_and_class_requirement():
    tally = Tally(fractions=FRACTIONS)
    hits = np.zeros((4, len(FRACTIONS)), bool)
    hits[:3, FRACTIONS.index(0.5)] = True
    hits[:1, FRACTIONS.index(0.15)] = True
    tally.add(hits[:2], np.array([True, False]))
    tally.add(hits[2:], np.array([True, True]))
    r = tally.report()
    assert (r["best"], r["best_threshold"], r["at_0.15"]) == (0.75, 0.5, 0.25)
    assert (r["best_with_class"], r["best_with_class_threshold"], r["at_0.15_with_class"]) == (0.5, 0.5, 0.25)


def test_evaluate_reports_every_method_on_synthscenes():
    lm = micro("vit")
    settings = Settings.of(lm, EigenCamParams())
    report = evaluate(lm, SynthSource(6, seed=3), settings, batch_size=4)
    assert report["images"] == 6
    assert set(report["eigencam"]) == {"0", "1"}
    assert report["gradcam"]["layer"] == 0
    assert report["best_layer"] in (0, 1)
    for r in (*report["eigencam"].values(), report["rollout"], report["gradcam"]):
        assert 0 <= r["best_with_class"] <= r["best"] <= 1
        assert r["best"] == max(r["curve"]) and r["at_0.15"] == r["curve"][2]


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


def test_cli_prints_one_json_object(capsys):
    status = cli(
        ["eval-localization", "random:vit-micro", "--dataset", "synthscenes:3", "--device", "cpu", "--json"]
    )
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    assert {"eigencam", "rollout", "gradcam", "best_layer"} <= set(report)
    assert report["dataset"] == "synthscenes:3:seed=0"
