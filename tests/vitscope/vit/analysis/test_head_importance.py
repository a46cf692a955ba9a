"""Head importance: the fast schedule against the naive loop, gradients, partial pruning."""

import copy
import dataclasses

import numpy as np
import pytest
import torch

from tests.utils.models import micro
from vitscope.contracts.errors import UserError
from vitscope.contracts.kinds.head_importance import HeadImportanceParams
from vitscope.vit.analysis import head_importance as hi
from vitscope.vit.analysis.precision import model_in
from vitscope.vit.data.inputs import Batch, SynthSource

LABELS = np.array([0, 3, -1, 5, 1, -1, 2])  # -1: unlabelled, scored against the clean prediction


class ArraySource:
    """Labelled images held in memory, as an `ImageSource`."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.images)

    def batches(self, batch_size, size):
        for start in range(0, len(self), batch_size):
            idx = np.arange(start, min(start + batch_size, len(self)))
            yield Batch(self.images[idx], self.labels[idx], np.full((len(idx), 4), np.nan, np.float32), idx)


def source(n=len(LABELS), seed=0):
    images = np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    return ArraySource(images, LABELS[:n])


def batches_of(lm, src, batch_size):
    return [
        (lm.preprocess(b.images), torch.as_tensor(b.labels))
        for b in src.batches(batch_size, lm.layout.image_size)
    ]


@pytest.fixture(scope="module")
def vit_result():
    """One fp32 run on micro ViT (2 layers x 4 heads), two batches, chunks smaller than B x H."""
    lm = micro("vit")
    params = HeadImportanceParams(batch_size=4, chunk_size=6, partial_images=(1, 5))
    return hi.run(lm, source(), params)


@pytest.mark.parametrize("family", ["vit", "dinov2-registers"])
def test_exact_ablation_equals_one_full_forward_per_masked_head(family):
    lm = micro(family)
    src = source()
    got = hi.run(lm, src, HeadImportanceParams(batch_size=4, chunk_size=5, taylor=False))
    ref = hi.naive_ablation(lm, batches_of(lm, src, 3))
    for name, value in ref.per_head().items():
        np.testing.assert_allclose(got.arrays[name], value.numpy(), atol=2e-6, err_msg=name)
    np.testing.assert_allclose(got.arrays["prob_after"], ref.prob_after.numpy(), atol=2e-6)
    np.testing.assert_allclose(got.arrays["prob_base"], ref.prob_base.numpy(), atol=2e-6)
    assert np.abs(got.arrays["prob_drop"]).max() > 1e-4  # ablation changed something


def test_bfloat16_with_recheck_keeps_float32_accuracy_drops(vit_result):
    lm = micro("vit")
    params = HeadImportanceParams(batch_size=4, dtype="bfloat16", partial_images=(1, 5))
    half = hi.run(lm, source(), params)
    np.testing.assert_array_equal(half.arrays["accuracy_drop"], vit_result.arrays["accuracy_drop"])
    np.testing.assert_allclose(half.arrays["prob_after"], vit_result.arrays["prob_after"], atol=0.02)
    assert half.summary["rechecked"] >= 0 and half.summary["dtype"] == "bfloat16"


def test_recheck_restores_float32_decisions_of_a_perturbed_fast_copy():
    lm = micro("vit")
    fast = copy.deepcopy(lm)
    with torch.no_grad():
        for p in fast.model.parameters():
            p.mul_(1 + 0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    (pixels, labels), *_ = batches_of(lm, source(), 7)
    clean = hi.clean_pass(lm, pixels, labels, taylor=False)
    exact, _ = hi.ablate_batch(lm, lm, clean, chunk_size=64)
    rough, _ = hi.ablate_batch(lm, fast, clean, chunk_size=64, recheck=False)
    fixed, rechecked = hi.ablate_batch(lm, fast, clean, chunk_size=64)
    assert rechecked > 0
    assert not torch.equal(rough.prob_after, exact.prob_after)
    torch.testing.assert_close(fixed.per_head()["accuracy_drop"], exact.per_head()["accuracy_drop"])


def test_taylor_gradient_equals_finite_differences_of_each_gate():
    lm = model_in(micro("vit"), torch.float64)
    (pixels, labels), *_ = batches_of(lm, source(), 7)
    grads = hi.clean_pass(lm, pixels, labels, taylor=True).taylor
    target = torch.where(labels >= 0, labels, lm.forward(pixels).argmax(-1))
    eps = 1e-5
    for layer in range(lm.num_layers):
        for head in range(lm.num_heads):
            losses = []
            for sign in (1, -1):
                gates = torch.ones(1, lm.num_layers, lm.num_heads, dtype=torch.float64)
                gates[0, layer, head] += sign * eps
                with torch.no_grad(), hi.intervene(lm.parts, head_gates=gates):
                    logits = lm.forward(pixels)
                losses.append(torch.nn.functional.cross_entropy(logits, target, reduction="none"))
            fd = ((losses[0] - losses[1]) / (2 * eps)).abs()
            torch.testing.assert_close(grads[:, layer, head].double(), fd, rtol=1e-4, atol=1e-7)


def test_taylor_arrays_are_image_means_normalised_per_layer(vit_result):
    taylor, raw = vit_result.arrays["taylor"], vit_result.arrays["taylor_raw"]
    np.testing.assert_allclose(np.linalg.norm(taylor, axis=-1), 1, rtol=1e-5)
    np.testing.assert_allclose(taylor, raw / np.linalg.norm(raw, axis=-1, keepdims=True), rtol=1e-5)
    assert -1 <= vit_result.summary["spearman"] <= 1
    assert set(vit_result.summary["spearman_detail"]) >= {"loss_change", "prob_drop"}


def test_partial_pruning_none_is_clean_and_whole_head_is_full_ablation(vit_result):
    arrays, summary = vit_result.arrays, vit_result.summary
    layer, head, images = summary["partial_layer"], summary["partial_head"], summary["partial_images"]
    target_prob = arrays["partial_target_prob"]
    assert target_prob.shape == (len(hi.MODES), 2)
    np.testing.assert_allclose(target_prob[hi.MODES.index("none")], arrays["prob_base"][images], atol=1e-6)
    whole = target_prob[hi.MODES.index("whole_head")]
    np.testing.assert_allclose(whole, arrays["prob_after"][images, layer, head], atol=1e-6)
    assert np.abs(target_prob[hi.MODES.index("patch_to_patch")] - target_prob[0]).max() > 1e-6
    top5 = arrays["partial_top5_prob"]
    assert top5.shape == (len(hi.MODES), 2, 5) and (np.diff(top5, axis=-1) <= 0).all()


def test_default_partial_head_is_the_one_with_the_largest_probability_drop(vit_result):
    drop = vit_result.arrays["prob_drop"]
    layer, head = np.unravel_index(drop.argmax(), drop.shape)
    assert (vit_result.summary["partial_layer"], vit_result.summary["partial_head"]) == (layer, head)


def test_partial_modes_zero_the_blocks_named():
    layout = micro("deit-distilled").layout  # CLS, distillation token, 16 patches
    masks = hi.partial_masks(layout, 4, head=2)
    mode = dict(zip(hi.MODES, masks[:, 2], strict=True))
    assert masks[:, [0, 1, 3]].eq(1).all() and mode["none"].eq(1).all() and mode["whole_head"].eq(0).all()
    assert mode["cls_row"][0].eq(0).all() and mode["cls_row"][1:].eq(1).all()
    assert mode["cls_column"][:, 0].eq(0).all() and mode["cls_column"][:, 1:].eq(1).all()
    p2p = mode["patch_to_patch"]
    assert p2p[2:, 2:].eq(0).all() and p2p[:2].eq(1).all() and p2p[:, :2].eq(1).all()
    assert torch.equal(mode["cls_row_column"], mode["cls_row"] * mode["cls_column"])


def test_summary_carries_accuracy_drop_as_layers_by_heads_list(vit_result):
    lm, summary = micro("vit"), vit_result.summary
    assert np.array(summary["accuracy_drop"]).shape == (lm.num_layers, lm.num_heads)
    np.testing.assert_allclose(summary["accuracy_drop"], vit_result.arrays["accuracy_drop"])
    assert summary["labelled"] == 5 and summary["images"] == len(LABELS)
    assert vit_result.arrays["labels"].tolist() == LABELS.tolist()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"partial_layer": 2}, "partial_layer 2"),
        ({"partial_layer": 0, "partial_head": 4}, "partial_head 4"),
        ({"partial_head": 1}, "needs partial_layer"),
        ({"partial_images": (3, 7)}, r"partial_images \[7\]"),
    ],
)
def test_parameters_that_do_not_fit_the_model_or_data_are_refused(params, message):
    with pytest.raises(UserError, match=message):
        hi.run(micro("vit"), source(), HeadImportanceParams(**params))


def test_synthscenes_labels_count_only_for_models_with_synthscenes_classes():
    lm = micro("vit")
    assert hi.labels_apply(lm, SynthSource(4))
    other = dataclasses.replace(lm, labels=[f"class {i}" for i in range(len(lm.labels))])
    assert not hi.labels_apply(other, SynthSource(4))
    assert hi.labels_apply(other, source())


def test_spearman_is_none_when_a_ranking_is_constant():
    assert hi.spearman(torch.arange(4.0), torch.ones(4)) is None
    assert hi.spearman(torch.arange(4.0), torch.arange(4.0) ** 3) == pytest.approx(1.0)
