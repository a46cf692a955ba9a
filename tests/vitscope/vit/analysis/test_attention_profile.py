"""The streamed attention-strength profile against stored attentions and loop references."""

import math

import numpy as np
import pytest
import torch

from tests.utils.models import micro
from vitscope.contracts.errors import UserError
from vitscope.contracts.kinds.attention_profile import AttentionProfileParams
from vitscope.vit.analysis import attention_profile
from vitscope.vit.data.inputs import Batch
from vitscope.vit.models import intervene


class ArraySource:
    """Images held in memory, as an `ImageSource`."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def batches(self, batch_size, size):
        for start in range(0, len(self), batch_size):
            idx = np.arange(start, min(start + batch_size, len(self)))
            n = len(idx)
            yield Batch(self.images[idx], np.full(n, -1), np.full((n, 4), np.nan, np.float32), idx)


def random_images(n, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def profile(lm, images, **params):
    return attention_profile.run(lm, ArraySource(images), AttentionProfileParams(**params))


@pytest.mark.parametrize("family", ["vit", "dinov2-registers"])
def test_streaming_one_image_at_a_time_equals_all_at_once(family):
    lm = micro(family)
    images = random_images(5)
    one = profile(lm, images, batch_size=1)
    whole = profile(lm, images, batch_size=5)
    assert one.arrays.keys() == whole.arrays.keys()
    for name, value in one.arrays.items():
        np.testing.assert_allclose(value, whole.arrays[name], atol=1e-6, rtol=1e-5, err_msg=name)
    assert one.summary.keys() == whole.summary.keys()
    for key, value in one.summary.items():
        np.testing.assert_allclose(value, whole.summary[key], rtol=1e-6, err_msg=key)


def loop_reference(lm, images):
    """Profile statistics from stored attentions, by explicit loops over (query, key) patches."""
    rows, cols = lm.layout.grid
    prefix, patch = lm.layout.n_prefix, lm.layout.patch_size
    with torch.no_grad(), intervene(lm.parts, capture=True) as rec:
        lm.forward(lm.preprocess(images))
    coords = [(p // cols, p % cols) for p in range(rows * cols)]
    rings = max(rows, cols)
    out = {
        "ring": torch.zeros(lm.num_layers, lm.num_heads, rings),
        "dist": torch.zeros(lm.num_layers, lm.num_heads),
    }
    for layer, probs in rec.attentions.items():
        a = probs.mean(0)  # image means (every per-image statistic below is linear in A except distance)
        sums, counts = torch.zeros(lm.num_heads, rings), torch.zeros(rings)
        for p, (rp, cp) in enumerate(coords):
            for q, (rq, cq) in enumerate(coords):
                n = max(abs(rp - rq), abs(cp - cq))
                sums[:, n] += a[:, prefix + p, prefix + q]
                counts[n] += 1
        out["ring"][layer] = sums / counts
        dist = torch.tensor([[math.dist(u, v) * patch for v in coords] for u in coords])
        per_image = probs[:, :, prefix:, prefix:]
        out["dist"][layer] = ((per_image * dist).sum(-1) / per_image.sum(-1)).mean((0, 2))
    out["sink"] = torch.stack(
        [rec.attentions[i][..., :prefix].sum(-1).mean((0, 2)) for i in range(lm.num_layers)]
    )
    return out


@pytest.mark.parametrize("family", ["vit", "deit-distilled"])
def test_profile_equals_a_loop_reference_on_stored_attention(family):
    lm = micro(family)
    images = random_images(3, seed=1)
    got = profile(lm, images, batch_size=2)
    ref = loop_reference(lm, images)
    np.testing.assert_allclose(got.arrays["ring_strength_patch"], ref["ring"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.arrays["mean_distance_px"], ref["dist"], rtol=1e-5)
    np.testing.assert_allclose(got.arrays["sink_share"], ref["sink"], rtol=1e-5, atol=1e-7)


def test_result_names_shapes_and_summary_follow_the_contract():
    lm = micro("vit")
    result = profile(lm, random_images(4), batch_size=3)
    L, H = lm.num_layers, lm.num_heads
    R, Rc = max(lm.layout.grid), (max(lm.layout.grid) + 1) // 2
    shapes = {name: value.shape for name, value in result.arrays.items()}
    assert shapes == {
        "ring_strength_patch": (L, H, R),
        "ring_strength_cls": (L, H, Rc),
        "entropy_patch": (L, H),
        "entropy_cls": (L, H),
        "entropy_per_image": (4, L, H),
        "entropy_per_image_cls": (4, L, H),
        "mean_distance_px": (L, H),
        "sink_share": (L, H),
    }
    assert result.summary["rings"] == R
    assert result.summary["max_entropy"] == pytest.approx(math.log(R))
    assert result.summary["entropy_by_layer"] == pytest.approx(result.arrays["entropy_patch"].mean(-1))
    assert (result.arrays["entropy_per_image"] <= math.log(R) + 1e-6).all()


def test_bfloat16_profile_is_close_to_float32():
    lm = micro("vit")
    images = random_images(3)
    full = profile(lm, images)
    half = profile(lm, images, dtype="bfloat16")
    for name, value in full.arrays.items():
        np.testing.assert_allclose(half.arrays[name], value, rtol=0.02, atol=0.02, err_msg=name)


def test_an_empty_dataset_is_refused():
    with pytest.raises(UserError, match="empty"):
        profile(micro("vit"), random_images(0))
