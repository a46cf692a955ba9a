"""Eigen-CAM on a real pretrained backbone (the offline DINOv2-S/14) and real photos."""

import numpy as np
import pytest
import torch

from tests.utils import photos
from vitscope.contracts.kinds import check_result, get
from vitscope.contracts.kinds.eigencam import EigenCamParams
from vitscope.vit.analysis import eigencam
from vitscope.vit.analysis.registry import model_block
from vitscope.vit.data.inputs import EncodedSource
from vitscope.vit.models import load_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dinov2():
    return load_model("imgfocus:dinov2-s")


def photo_source(names):
    pictures = [photos.load(name) for name in names]
    return EncodedSource([lambda p=p: photos.png(p) for p in pictures], None, names)


def mass_in_box(cam, crop, box, size):
    """Share of the map's mass inside `box` (original pixels), and the box's share of the crop."""
    x0, y0, x1, y1 = crop
    h, w = size
    bx = np.clip((np.array(box[0::2]) - x0) * w / (x1 - x0), 0, w)
    by = np.clip((np.array(box[1::2]) - y0) * h / (y1 - y0), 0, h)
    up = eigencam.upsample(cam, size).numpy()
    inside = np.zeros(size, bool)
    (r0, r1), (c0, c1) = np.rint(by).astype(int), np.rint(bx).astype(int)
    inside[r0:r1, c0:c1] = True
    return up[inside].sum() / up.sum(), inside.mean()


def test_the_default_sign_puts_the_map_on_the_object_in_real_photos(dinov2):
    boxes = photos.boxes()
    names = sorted(boxes)
    assert len(names) >= 10
    params = EigenCamParams(baselines=False, sanity_check=False, faithfulness=False)
    result = eigencam.run(dinov2, photo_source(names), params)
    assert result.summary["sign_rule"] == "cls-attention"
    found = []
    for i, name in enumerate(names):
        cam = result.arrays["cam"][i, -1]
        mass, share = mass_in_box(cam, result.arrays["crop_boxes"][i], boxes[name], dinov2.layout.image_size)
        found.append(mass > share)
    assert np.mean(found) >= 0.8, dict(zip(names, found, strict=True))
    skew = eigencam.run(dinov2, photo_source(names), params.model_copy(update={"sign_rule": "skew"}))
    assert not np.array_equal(skew.arrays["cam"], result.arrays["cam"])  # the rule is what differs


def test_a_backbone_gets_maps_and_no_class_based_arrays(dinov2):
    names = ["coffee", "rocket"]
    # two deletion/insertion steps: the real backbone's faithfulness path, cheaply
    result = eigencam.run(dinov2, photo_source(names), EigenCamParams(sanity_images=1, faithfulness_steps=2))
    assert {"top5_idx", "top5_prob", "gradcam", "rank_corr_gradcam"}.isdisjoint(result.arrays)
    assert result.summary["top5"] == [] and set(result.summary["left_out"]) >= {"top5_idx", "gradcam"}
    assert result.arrays["cam"].shape == (2, 12, 16, 16) and "rollout" in result.arrays
    sizes = result.arrays["original_sizes"]
    assert sizes.tolist() == [list(photos.load(n).shape[:2]) for n in names]
    curve = result.summary["cascade_rank_corr"]
    assert len(curve) == 13 and curve[0] == pytest.approx(1.0) and curve[-1] < 0.9
    summary = {**result.summary, "model": model_block(dinov2).model_dump(mode="json")}
    check_result(get("eigencam"), result.arrays, summary)


def test_two_identical_runs_give_identical_arrays(dinov2):
    params = EigenCamParams(sanity_images=1, faithfulness_steps=2)
    first = eigencam.run(dinov2, photo_source(["chelsea"]), params)
    torch.manual_seed(1234)  # nothing may depend on the global generator
    second = eigencam.run(dinov2, photo_source(["chelsea"]), params)
    assert first.arrays.keys() == second.arrays.keys()
    for name, array in first.arrays.items():
        np.testing.assert_array_equal(array, second.arrays[name], err_msg=name)


def test_the_randomization_curve_is_the_same_on_two_and_on_five_photos(dinov2):
    names = sorted(photos.boxes())
    params = EigenCamParams(baselines=False, faithfulness=False, sanity_images=2)
    two = eigencam.run(dinov2, photo_source(names[:2]), params)
    five = eigencam.run(dinov2, photo_source(names[2:7]), params)  # five other photos
    for key in ("cascade_rank_corr", "cascade_ssim", "rank_corr_by_layer", "ssim_by_layer"):
        np.testing.assert_allclose(two.summary[key], five.summary[key], atol=0.05, err_msg=key)
    curve = two.summary["cascade_rank_corr"]
    assert curve[0] == pytest.approx(1.0) and max(curve[-3:]) < 0.9  # starts at 1 and falls
    assert not np.array_equal(two.arrays["rank_corr"], five.arrays["rank_corr"][:2])  # per photo: its own
