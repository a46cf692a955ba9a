"""Faithfulness: deletion/insertion on a linear model with its analytic answer, boxes, the job's arrays."""

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

from tests.utils.models import micro, micro_backbone
from vitscope.contracts import kinds
from vitscope.contracts.kinds.base import check_result
from vitscope.contracts.kinds.eigencam import EigenCamParams
from vitscope.vit.analysis import faithfulness as fa
from vitscope.vit.analysis.eigencam import run
from vitscope.vit.data.inputs import Batch, SynthSource

GRID, PATCH = (3, 3), 4


@dataclass(frozen=True)
class Layout:
    grid: tuple[int, int]


class LinearModel:
    """logits = [w . x, 0]: the class-0 probability is sigmoid(w . x), whose gradient x input is exact."""

    classifier = True

    def __init__(self, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.w = torch.randn(3, GRID[0] * PATCH, GRID[1] * PATCH, generator=g, dtype=torch.float64)

    def layout_for(self, _size: tuple[int, int]) -> Layout:
        return Layout(GRID)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logit = (x * self.w).sum((1, 2, 3))
        return torch.stack([logit, torch.zeros_like(logit)], -1)


def grad_times_input(model: LinearModel, x: torch.Tensor) -> torch.Tensor:
    """Per patch, the sum of w * (x - baseline): exact attributions of the logit (completeness)."""
    contrib = (model.w * (x - fa.blurred(x))).sum(1)  # (B, H, W)
    b = contrib.shape[0]
    return contrib.reshape(b, GRID[0], PATCH, GRID[1], PATCH).sum((2, 4)).reshape(b, -1)


def setup(batch: int = 2) -> tuple[Any, torch.Tensor, torch.Tensor]:
    model = LinearModel()
    x = torch.randn(batch, 3, GRID[0] * PATCH, GRID[1] * PATCH, generator=torch.Generator().manual_seed(1))
    x = x.double()
    return model, x, torch.zeros(batch, dtype=torch.long)


class NoBoxes:
    """Two random 32 px images, unlabelled, without boxes."""

    def __len__(self) -> int:
        return 2

    def batches(self, batch_size: int, size: Any) -> Any:
        images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
        yield Batch(images, np.full(2, -1), np.full((2, 4), np.nan), np.arange(2))


def test_gradient_times_input_gives_the_analytic_deletion_and_insertion_curves():
    model, x, target = setup()
    attribution = grad_times_input(model, x)  # (B, P)
    steps = 9  # one patch per step
    deletion, insertion, at = fa.curves(model, x, attribution[:, None], target, steps)
    clean = model.forward(x)[:, 0]
    top = attribution.sort(-1, descending=True).values.cumsum(-1)
    zero = torch.zeros(len(x), 1, dtype=top.dtype)
    expected_del = torch.sigmoid(clean[:, None] - torch.cat([zero, top], -1))
    expected_ins = torch.sigmoid(
        clean[:, None] - attribution.sum(-1, keepdim=True) + torch.cat([zero, top], -1)
    )
    torch.testing.assert_close(deletion[:, 0].double(), expected_del)
    torch.testing.assert_close(insertion[:, 0].double(), expected_ins)
    torch.testing.assert_close(at, torch.arange(10, dtype=torch.float64) / 9)


def test_a_random_maps_aucs_lie_between_a_perfect_and_an_inverted_maps():
    model, x, target = setup(batch=4)
    perfect = grad_times_input(model, x)
    chance = torch.as_tensor(fa.random_maps(np.arange(4), 9, seed=3))
    maps = torch.stack([perfect, chance.to(perfect), -perfect], 1)  # (B, 3, P)
    deletion, insertion, at = fa.curves(model, x, maps, target, steps=9)
    d, i = fa.auc(deletion, at), fa.auc(insertion, at)
    assert np.all(d[:, 0] <= d[:, 1]) and np.all(d[:, 1] <= d[:, 2])
    assert np.all(i[:, 0] >= i[:, 1]) and np.all(i[:, 1] >= i[:, 2])
    assert np.all(d[:, 0] < d[:, 2]) and np.all(i[:, 0] > i[:, 2])  # the ordering is not a tie


def test_mass_in_box_of_the_box_indicator_is_one_and_of_a_uniform_map_the_box_share():
    boxes = np.array([[4.0, 0.0, 12.0, 8.0], [np.nan] * 4])  # patch-aligned: columns 1-2, rows 0-1
    overlap = fa.patch_box_overlap(boxes, GRID, (12, 12))
    indicator = (overlap[:1] > 0).astype(float)
    maps = np.stack([np.stack([indicator[0], np.ones(9)]), np.ones((2, 9))])  # (N=2, M=2, P)
    mass = fa.mass_in_box(maps, overlap)
    assert mass[0, 0] == pytest.approx(1.0)
    assert mass[0, 1] == pytest.approx(fa.box_share(boxes, (12, 12))[0]) == pytest.approx(64 / 144)
    assert np.isnan(mass[1]).all() and np.isnan(fa.box_share(boxes, (12, 12))[1])


def test_patch_overlap_weights_a_patch_by_its_area_inside_the_box():
    overlap = fa.patch_box_overlap(np.array([[2.0, 0.0, 4.0, 4.0]]), GRID, (12, 12))
    assert overlap[0, 0] == pytest.approx(0.5) and overlap[0].sum() == pytest.approx(0.5)


def test_pointing_hits_the_box_that_holds_the_peak_patch_centre():
    maps = np.zeros((1, 2, 9))
    maps[0, 0, 4], maps[0, 1, 0] = 1.0, 1.0  # centre patch, top-left patch
    hits = fa.pointing_hits(maps, np.array([[4.0, 4.0, 8.0, 8.0]]), GRID, (12, 12))
    assert hits.tolist() == [[1.0, 0.0]]


def test_patch_order_breaks_ties_by_the_key_not_by_position():
    maps = torch.tensor([[1.0, 0.0, 0.0, 0.0, 2.0]])
    key = torch.tensor([[0.0, 0.1, 0.9, 0.5, 0.0]])
    assert fa.patch_order(maps, key).tolist() == [[4, 0, 2, 3, 1]]
    assert fa.patch_order(maps).tolist() == [[4, 0, 1, 2, 3]]
    order = torch.tensor([[2, 0, 1]])
    assert fa.ranks(order).tolist() == [[1, 2, 0]]


def test_step_counts_cover_zero_to_all_patches_and_are_capped():
    assert fa.step_counts(16, 4).tolist() == [0, 4, 8, 12, 16]
    assert fa.step_counts(4, 16).tolist() == [0, 1, 2, 3, 4]


def test_auc_is_the_trapezoid_rule_on_zero_to_one():
    x = np.linspace(0, 1, 5)
    assert fa.auc(x, x) == pytest.approx(0.5)
    assert fa.auc(np.ones((2, 5)), x).tolist() == pytest.approx([1.0, 1.0])


def test_random_maps_depend_on_the_image_position_not_the_batch():
    whole = fa.random_maps(np.arange(4), 9, seed=0)
    np.testing.assert_array_equal(fa.random_maps(np.array([2, 3]), 9, seed=0), whole[2:])
    assert not np.allclose(fa.random_maps(np.arange(4), 9, seed=1), whole)


def test_centre_prior_peaks_in_the_middle():
    prior = fa.centre_prior((3, 3))
    assert prior.argmax() == 4 and prior[4] == pytest.approx(1.0) and prior[0] == pytest.approx(prior[8])


def test_sanity_readings_pass_below_the_threshold_on_full_randomization():
    arrays = {
        "cascade_rank_corr": np.array([[[1.0, 1.0], [0.9, 0.4], [0.8, -0.2]]] * 2),  # (n, S, L)
        "rank_corr_rollout": np.array([0.9, -0.7]),
    }
    readings = fa.sanity_readings([3, 5], arrays)
    assert readings["eigencam/3"] == {
        "rank_corr": pytest.approx(0.8),
        "randomization": "cascade",
        "passed": False,
    }
    assert readings["eigencam/5"]["passed"] is True and readings["eigencam/5"]["rank_corr"] == pytest.approx(
        0.2
    )
    assert (
        readings["rollout"]["rank_corr"] == pytest.approx(0.8)
        and readings["rollout"]["randomization"] == "independent"
    )


def test_most_faithful_ignores_the_reference_maps():
    names = ["eigencam/0", "rollout", "random", "centre"]
    best = fa.most_faithful(names, [0.3, 0.2, 0.0, 0.1], [0.5, 0.6, 0.9, 0.9])
    assert best == {"method": "rollout", "insertion_minus_deletion": pytest.approx(0.4)}


def test_eigencam_job_scores_every_map_and_its_summary_matches_the_arrays():
    lm = micro("vit")
    params = EigenCamParams(batch_size=2, sanity_check=False, faithfulness_steps=4)
    result = run(lm, SynthSource(3, seed=0), params)
    a, s = result.arrays, result.summary
    names = ["eigencam/0", "eigencam/1", "rollout", "gradcam", "random", "centre"]
    assert s["faithfulness_methods"] == names
    assert a["deletion_curve"].shape == (3, 6, 5) and a["mass_in_box"].shape == (3, 6)
    np.testing.assert_allclose(a["deletion_curve"][:, :, 0], a["insertion_curve"][:, :, -1])  # clean
    np.testing.assert_allclose(a["deletion_curve"][:, :, -1], a["insertion_curve"][:, :, 0])  # baseline
    np.testing.assert_allclose(s["deletion_auc_by_method"], a["deletion_auc"].mean(0))
    np.testing.assert_allclose(s["mass_in_box_by_method"], a["mass_in_box"].mean(0))
    assert 0 < s["box_share"] < 1 and s["most_faithful"]["method"] in names[:4]
    check_result(kinds.get("eigencam"), a, s)


def test_a_backbone_scores_the_cls_cosine_and_images_without_boxes_get_no_box_arrays():
    lm = micro_backbone("vit")
    params = EigenCamParams(batch_size=2, sanity_check=False, faithfulness_steps=3)
    result = run(lm, NoBoxes(), params)
    a, s = result.arrays, result.summary
    assert s["faithfulness_methods"] == ["eigencam/0", "eigencam/1", "rollout", "random", "centre"]
    np.testing.assert_allclose(a["deletion_curve"][:, :, 0], 1.0, atol=1e-5)  # the clean image's own cosine
    assert "mass_in_box" not in a and s["faithfulness_score"] == "CLS embedding cosine"
    check_result(kinds.get("eigencam"), a, s)


def test_faithfulness_can_be_turned_off():
    result = run(micro("vit"), SynthSource(1, seed=0), EigenCamParams(sanity_check=False, faithfulness=False))
    assert "deletion_auc" not in result.arrays and "faithfulness_methods" not in result.summary


@pytest.mark.timeout(60, method="thread")  # a hang is in native code, out of a signal's reach
def test_blurring_bfloat16_channels_last_images_is_the_float32_blur_rounded():
    # preprocessed pixels are channels-last views of the uint8 images; in bfloat16, oneDNN's own
    # depthwise kernel never finished building on an AVX512-BF16 CPU
    pixels = torch.rand(2, 32, 32, 3).permute(0, 3, 1, 2)
    half = fa.blurred(pixels.bfloat16())
    assert half.dtype == torch.bfloat16 and half.shape == pixels.shape
    torch.testing.assert_close(half, fa.blurred(pixels.bfloat16().float()).bfloat16())
