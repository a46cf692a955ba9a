"""Head importance: the fast schedule against the naive loop, gradients; backbones
task-free and through a probe."""

import copy
import dataclasses
import io

import numpy as np
import pytest
import torch
from PIL import Image

from tests.utils.models import FAMILIES, micro, micro_backbone
from vitscope.contracts.kinds import check_result
from vitscope.contracts.kinds.head_importance import KIND, HeadImportanceParams
from vitscope.vit.analysis import head_importance as hi
from vitscope.vit.analysis import probe
from vitscope.vit.analysis.precision import model_in
from vitscope.vit.data.inputs import Batch, EncodedSource, SynthSource
from vitscope.vit.data.synthscenes import CATEGORIES
from vitscope.vit.models import intervene, load_model
from vitscope.vit.models.hooks import probe_attention_calls
from vitscope.vit.models.probe import with_probe

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
    params = HeadImportanceParams(batch_size=4, chunk_size=6)
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


# --- the cheaper resumed copies: last block on the read rows only, ablated layer after its attention ---

READ_ROWS = {"vit": (0,), "deit": (0,), "deit-distilled": (0, 1), "dinov2": None, "dinov2-registers": None}
"""The tokens each family's classifier reads: CLS; distilled DeiT averages its CLS and distillation
heads; DINOv2's classifier reads CLS and the mean of the patches (no cut)."""


def naive_outcomes(lm, clean, pixels):
    """name -> (B, L, H): the `measure` outcomes (margin included) and layer impact of one full forward
    per head, gated to zero, nothing resumed or cut."""
    samples = torch.arange(len(pixels))
    grid = hi._Grid((len(pixels), lm.num_layers, lm.num_heads), pixels.device)
    for layer in range(lm.num_layers):
        for head in range(lm.num_heads):
            gates = torch.ones(1, lm.num_layers, lm.num_heads)
            gates[0, layer, head] = 0
            with torch.no_grad(), intervene(lm.parts, head_gates=gates, record_outputs=[layer]) as rec:
                out = hi.read(lm, pixels)
            ref = clean.outputs[layer].flatten(1)
            impact = (rec.outputs[layer].flatten(1) - ref).norm(dim=-1) / ref.norm(dim=-1)
            outcomes = {"impact": impact, **hi.measure(lm, clean, samples, out)}
            grid.fill(layer, samples, torch.full_like(samples, head), outcomes)
    return grid.values


def resumed_outcomes(lm, clean, chunk_size=5):
    """The same outcomes from the schedule (`ablate_pairs`, chunks mixing heads and images)."""
    grid = hi._Grid((clean.size, lm.num_layers, lm.num_heads), clean.device)
    pairs = hi._all_pairs(clean.size, lm.num_heads, clean.device)
    for layer in range(lm.num_layers):
        for samples, heads in hi._chunks(*pairs, chunk_size):
            grid.fill(layer, samples, heads, hi.ablate_pairs(lm, layer, clean, samples, heads))
    return grid.values


@pytest.mark.parametrize("backbone", [False, True], ids=["classifier", "backbone"])
@pytest.mark.parametrize("family", FAMILIES)
def test_cheaper_copies_give_the_outcomes_of_one_full_forward_per_head(family, backbone):
    lm = micro_backbone(family) if backbone else micro(family)
    assert hi.readout_rows(lm) == (None if backbone else READ_ROWS[family])
    assert hi.output_maps(lm) is not None  # every family resumes after the ablated layer's attention
    (pixels, labels), *_ = batches_of(lm, source(), 7)
    clean = hi.clean_pass(lm, pixels, labels, taylor=False)
    assert clean.contexts is not None and clean.attention is not None
    got, ref = resumed_outcomes(lm, clean), naive_outcomes(lm, clean, pixels)
    expected = {"impact", "cos", "patch"} if backbone else {"impact", "prob", "loss", "correct", "margin"}
    assert set(got) == set(ref) == expected
    for name in ("impact", "prob", "loss", "margin", "cos", "patch"):
        if name in ref:
            torch.testing.assert_close(got[name], ref[name], atol=2e-6, rtol=1e-5, msg=name)
    if not backbone:
        near_tie = ref["margin"].abs() < 1e-5
        assert torch.equal(got["correct"][~near_tie], ref["correct"][~near_tie])
        assert (ref["prob"] - hi.score(clean.logits, clean.target).prob[:, None, None]).abs().max() > 1e-4


@pytest.mark.parametrize("family", ["vit", "deit-distilled", "dinov2"])
def test_copies_skip_the_ablated_attention_and_run_the_last_one_on_the_read_rows(family):
    lm = micro(family)
    (pixels, labels), *_ = batches_of(lm, source(), 3)
    clean = hi.clean_pass(lm, pixels, labels, taylor=False)
    rows = READ_ROWS[family]
    samples, heads = torch.tensor([0, 2, 1]), torch.tensor([1, 3, 0])
    last, cuts = lm.parts.attention[-1], hi.cuts_for(lm)
    with probe_attention_calls() as calls:
        hi.ablate_pairs(lm, 0, clean, samples, heads, cuts=cuts)
    # no attention at the ablated layer; the last block's keys and values, then its read rows
    assert calls == ([last, last] if rows else [last])
    with probe_attention_calls() as calls:
        hi.ablate_pairs(lm, 1, clean, samples, heads, cuts=cuts)
    assert calls == []
    hidden = clean.residuals[1]
    with torch.no_grad(), intervene(lm.parts, start=(1, hidden), last_rows=rows or [0]) as rec:
        cut = lm.features(lm.blank_pixels(len(hidden)))
    full = lm.resume(1, hidden, features=True)
    kept = list(rows or [0])
    torch.testing.assert_close(cut[:, kept], full[:, kept], atol=1e-6, rtol=1e-5)
    assert rec.outputs == {}


def test_last_rows_refuse_a_last_layer_that_is_captured_or_recorded():
    lm = micro("vit")
    last = lm.num_layers - 1
    for kwargs in ({"capture": [last]}, {"record_outputs": [last]}):
        with pytest.raises(ValueError, match="last_rows"), intervene(lm.parts, last_rows=[0], **kwargs):
            pass


def test_bfloat16_copies_with_the_cuts_stay_close_to_the_float32_loop():
    lm = micro("deit-distilled")
    fast = model_in(lm, "bfloat16")
    assert hi.readout_rows(fast) == (0, 1) and hi.output_maps(fast) is not None
    (pixels, labels), *_ = batches_of(lm, source(), 7)
    clean = hi.clean_pass(lm, pixels, labels, taylor=False)
    half, _ = hi.ablate_batch(lm, fast, clean, chunk_size=6)
    exact = hi.naive_ablation(lm, [(pixels, labels)])
    torch.testing.assert_close(half.per_head()["accuracy_drop"], exact.per_head()["accuracy_drop"])
    torch.testing.assert_close(half.prob_after, exact.prob_after, atol=0.02, rtol=0)
    torch.testing.assert_close(half.impact, exact.impact, atol=0.02, rtol=0.05)


def test_bfloat16_with_recheck_keeps_float32_accuracy_drops(vit_result):
    lm = micro("vit")
    params = HeadImportanceParams(batch_size=4, dtype="bfloat16")
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

    def loss() -> torch.Tensor:
        return torch.nn.functional.cross_entropy(lm.forward(pixels), target, reduction="none")

    for (layer, head), derivative in gate_derivatives(lm, loss):
        torch.testing.assert_close(grads[:, layer, head].double(), derivative.abs(), rtol=1e-4, atol=1e-7)


def gate_derivatives(lm, output, eps=1e-5):
    """Yield ((layer, head), d output / d gate) by central differences, every head in turn."""
    for layer in range(lm.num_layers):
        for head in range(lm.num_heads):
            moved = []
            for sign in (1, -1):
                gates = torch.ones(1, lm.num_layers, lm.num_heads, dtype=torch.float64)
                gates[0, layer, head] += sign * eps
                with torch.no_grad(), hi.intervene(lm.parts, head_gates=gates):
                    moved.append(output())
            yield (layer, head), (moved[0] - moved[1]) / (2 * eps)


def test_taylor_arrays_are_image_means_normalised_per_layer(vit_result):
    taylor, raw = vit_result.arrays["taylor"], vit_result.arrays["taylor_raw"]
    np.testing.assert_allclose(np.linalg.norm(taylor, axis=-1), 1, rtol=1e-5)
    np.testing.assert_allclose(taylor, raw / np.linalg.norm(raw, axis=-1, keepdims=True), rtol=1e-5)
    assert -1 <= vit_result.summary["spearman"] <= 1
    assert set(vit_result.summary["spearman_detail"]) >= {"loss_change", "prob_drop"}


def test_summary_carries_accuracy_drop_as_layers_by_heads_list(vit_result):
    lm, summary = micro("vit"), vit_result.summary
    assert np.array(summary["accuracy_drop"]).shape == (lm.num_layers, lm.num_heads)
    np.testing.assert_allclose(summary["accuracy_drop"], vit_result.arrays["accuracy_drop"])
    assert summary["labelled"] == 5 and summary["images"] == len(LABELS)
    assert vit_result.arrays["labels"].tolist() == LABELS.tolist()


def test_synthscenes_labels_count_only_for_models_with_synthscenes_classes():
    lm = micro("vit")
    assert hi.labels_apply(lm, SynthSource(4))
    other = dataclasses.replace(lm, labels=[f"class {i}" for i in range(len(lm.labels))])
    assert not hi.labels_apply(other, SynthSource(4))
    assert hi.labels_apply(other, source())


def test_spearman_is_none_when_a_ranking_is_constant():
    assert hi.spearman(torch.arange(4.0), torch.ones(4)) is None
    assert hi.spearman(torch.arange(4.0), torch.arange(4.0) ** 3) == pytest.approx(1.0)


# --- backbones: task-free metrics, a probe when the images are labelled --------------------------


def unlabelled(n=5, seed=1):
    images = np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    return ArraySource(images, np.full(n, -1))


def by_hand(lm, pixels):
    """Per image, layer and head (N, L, H): 1 - cos of the final CLS embedding and the relative change
    of the final patch features, each head zeroed in one full forward."""
    n_prefix, cls = lm.layout.n_prefix, lm.layout.cls_index
    with torch.no_grad():
        clean = lm.features(pixels)
    drop = torch.empty(len(pixels), lm.num_layers, lm.num_heads)
    patch = torch.empty_like(drop)
    for layer in range(lm.num_layers):
        for head in range(lm.num_heads):
            gates = torch.ones(1, lm.num_layers, lm.num_heads)
            gates[0, layer, head] = 0
            with torch.no_grad(), hi.intervene(lm.parts, head_gates=gates):
                ablated = lm.features(pixels)
            a, c = ablated[:, cls], clean[:, cls]
            drop[:, layer, head] = 1 - (a * c).sum(-1) / (a.norm(dim=-1) * c.norm(dim=-1))
            diff = (ablated[:, n_prefix:] - clean[:, n_prefix:]).flatten(1).norm(dim=-1)
            patch[:, layer, head] = diff / clean[:, n_prefix:].flatten(1).norm(dim=-1)
    return drop, patch


@pytest.mark.parametrize("family", ["vit", "dinov2-registers"])
def test_task_free_metrics_equal_embeddings_compared_by_hand(family):
    lm = micro_backbone(family)
    src = unlabelled()
    got = hi.run(lm, src, HeadImportanceParams(batch_size=2, chunk_size=3, taylor=False))
    drop, patch = by_hand(lm, batches_of(lm, src, 5)[0][0])
    np.testing.assert_allclose(got.arrays["cls_cosine_after"], 1 - drop.numpy(), atol=1e-6)
    np.testing.assert_allclose(got.arrays["cls_cosine_drop"], drop.mean(0).numpy(), atol=1e-6)
    np.testing.assert_allclose(got.arrays["patch_change"], patch.mean(0).numpy(), atol=1e-6)
    ref = hi.naive_ablation(lm, batches_of(lm, src, 5)).per_head()
    np.testing.assert_allclose(got.arrays["layer_impact"], ref["layer_impact"].numpy(), atol=2e-6)
    assert drop.min() > 0 and patch.min() > 1e-4  # every head moved the features
    check_result(KIND, got.arrays, got.summary)


def test_zeroing_a_head_whose_values_are_zero_changes_nothing():
    lm = copy.deepcopy(micro_backbone("vit"))
    layer, head = 1, 2
    attention = lm.parts.attention[layer]
    width = lm.model.config.hidden_size // lm.num_heads
    with torch.no_grad():  # the head already outputs zero: gating it to zero is the identity
        attention.v_proj.weight[head * width : (head + 1) * width] = 0
        attention.v_proj.bias[head * width : (head + 1) * width] = 0
    got = hi.run(lm, unlabelled(), HeadImportanceParams(batch_size=5))
    a = got.arrays
    for name in ("cls_cosine_drop", "patch_change", "layer_impact", "embedding_taylor_raw"):
        assert abs(a[name][layer, head]) < 1e-6, name
        assert np.delete(a[name].ravel(), layer * lm.num_heads + head).min() > 1e-6, name
    np.testing.assert_allclose(a["cls_cosine_after"][:, layer, head], 1, atol=1e-6)


def test_task_free_taylor_is_the_second_order_change_of_the_cosine():
    lm = model_in(micro_backbone("vit"), torch.float64)
    (pixels, labels), *_ = batches_of(lm, unlabelled(3), 3)
    width = lm.model.config.hidden_size
    basis = width**0.5 * torch.eye(width, dtype=torch.float64)[:, None].expand(width, 3, width)
    estimate = hi.clean_pass(lm, pixels, labels, taylor=True, probes=basis).embedding_taylor
    cls = lm.layout.cls_index
    with torch.no_grad():
        e = lm.features(pixels)[:, cls]
    unit = e / e.norm(dim=-1, keepdim=True)
    for (layer, head), jac in gate_derivatives(lm, lambda: lm.features(pixels)[:, cls]):
        turned = jac - (jac * unit).sum(-1, keepdim=True) * unit
        second_order = turned.square().sum(-1) / (2 * e.square().sum(-1))
        torch.testing.assert_close(estimate[:, layer, head].double(), second_order, rtol=1e-4, atol=1e-9)


def test_task_free_taylor_ranks_heads_like_the_exact_drop():
    got = hi.run(micro_backbone("vit"), unlabelled(8), HeadImportanceParams(batch_size=8))
    raw, drop = got.arrays["embedding_taylor_raw"], got.arrays["cls_cosine_drop"]
    assert got.summary["spearman"] == got.summary["spearman_detail"]["cls_cosine_drop_raw"] > 0.5
    np.testing.assert_allclose(raw, drop, rtol=0.5)  # an estimate of the drop itself, not just a ranking
    np.testing.assert_allclose(np.linalg.norm(got.arrays["embedding_taylor"], axis=-1), 1, rtol=1e-5)


def test_taylor_probes_of_an_image_do_not_depend_on_its_batch():
    together = hi.taylor_probes(np.array([3, 4]), 8, seed=1)
    assert together.shape == (hi.TAYLOR_PROBES, 2, 8)
    torch.testing.assert_close(together[:, 1], hi.taylor_probes([4], 8, seed=1)[:, 0], rtol=0, atol=0)
    assert not torch.equal(together[:, 1], hi.taylor_probes([4], 8, seed=2)[:, 0])


def test_backbone_without_labels_leaves_out_the_class_metrics_and_says_why():
    got = hi.run(micro_backbone("vit"), unlabelled(), HeadImportanceParams(batch_size=5))
    summary = got.summary
    assert summary["objective"] == "task-free" and summary["probe"] is None
    assert summary["metrics"] == ["layer_impact", "cls_cosine_drop", "patch_change", "embedding_taylor"]
    assert set(summary["left_out"]) == {"accuracy_drop", "prob_drop", "loss_change", "taylor"}
    assert "no labels for a probe" in summary["left_out"]["accuracy_drop"]
    assert not {"prob_after", "labels", "taylor_raw"} & set(got.arrays)
    assert summary["accuracy"] is None and summary["accuracy_drop"] is None and summary["label_names"] == []


def test_too_few_labelled_images_fit_no_probe():
    got = hi.run(micro_backbone("vit"), source(), HeadImportanceParams(batch_size=7, taylor=False))
    assert got.summary["objective"] == "task-free"
    assert "only 5 images are labelled" in got.summary["left_out"]["prob_drop"]
    assert got.summary["left_out"]["embedding_taylor"] == "taylor=false"


@pytest.fixture(scope="module")
def probed_result():
    """A micro ViT backbone on 16 labelled SynthScenes images: a probe gives the class metrics."""
    params = HeadImportanceParams(batch_size=8, chunk_size=12)
    return hi.run(micro_backbone("vit"), SynthSource(16), params)


def test_backbone_with_labelled_synthscenes_is_scored_through_a_probe(probed_result):
    arrays, summary = probed_result.arrays, probed_result.summary
    probe = summary["probe"]
    assert summary["objective"] == "probe" and summary["left_out"] == {}
    assert probe["classes"] == list(CATEGORIES) == summary["label_names"]
    assert probe["train_images"] + probe["test_images"] == 16 == summary["labelled"]
    assert 0 <= probe["held_out_accuracy"] <= 1 and probe["train_accuracy"] == 1.0
    assert {"accuracy_drop", "taylor", "cls_cosine_drop"} <= set(arrays)
    assert summary["spearman"] == summary["spearman_detail"]["loss_change"]
    check_result(KIND, arrays, summary)


def test_probe_class_metrics_equal_the_naive_loop_on_the_probed_model(probed_result):
    lm = micro_backbone("vit")
    fit = probe.probe_on(lm, SynthSource(16), 8, 0, lambda *_: None, (0, 1))
    probed = with_probe(lm, fit.head)
    src = SynthSource(16)
    batches = [(lm.preprocess(b.images), torch.as_tensor(b.labels)) for b in src.batches(8, (32, 32))]
    ref = hi.naive_ablation(probed, batches)
    for name, value in ref.per_head().items():
        np.testing.assert_allclose(probed_result.arrays[name], value.numpy(), atol=2e-6, err_msg=name)
    np.testing.assert_allclose(probed_result.arrays["prob_after"], ref.prob_after.numpy(), atol=2e-6)
    assert np.abs(probed_result.arrays["prob_drop"]).max() > 1e-4


def test_bfloat16_probe_keeps_float32_accuracy_drops_and_close_task_free_metrics(probed_result):
    params = HeadImportanceParams(batch_size=8, chunk_size=12, dtype="bfloat16")
    half = hi.run(micro_backbone("vit"), SynthSource(16), params)
    np.testing.assert_array_equal(half.arrays["accuracy_drop"], probed_result.arrays["accuracy_drop"])
    for name in ("cls_cosine_drop", "patch_change"):
        exact = probed_result.arrays[name]
        np.testing.assert_allclose(half.arrays[name], exact, atol=0.02 * exact.max(), err_msg=name)


@pytest.mark.parametrize("dataset", ["unlabelled", "synthscenes"])
def test_identical_backbone_runs_give_identical_results(dataset):
    src = unlabelled(6) if dataset == "unlabelled" else SynthSource(12, seed=3)
    params = HeadImportanceParams(batch_size=4, chunk_size=5)
    first, second = (hi.run(micro_backbone("vit"), src, params) for _ in range(2))
    assert first.arrays.keys() == second.arrays.keys() and first.summary == second.summary
    for name, value in first.arrays.items():
        np.testing.assert_array_equal(value, second.arrays[name], err_msg=name)
    assert first.summary["objective"] == ("task-free" if dataset == "unlabelled" else "probe")


def test_classifier_summary_says_the_task_free_metrics_are_for_backbones(vit_result):
    summary = vit_result.summary
    assert summary["objective"] == "classifier" and summary["probe"] is None
    assert set(summary["left_out"]) == {"cls_cosine_drop", "patch_change", "embedding_taylor"}
    assert "classifier" in summary["left_out"]["patch_change"]
    assert "cls_cosine_after" not in vit_result.arrays
    check_result(KIND, vit_result.arrays, summary)


@pytest.mark.slow
def test_dinov2_small_backbone_gets_task_free_metrics_only():
    lm = load_model("imgfocus:dinov2-s")
    assert not lm.classifier
    rendered = next(SynthSource(4, seed=5).batches(4, (224, 224))).images
    blobs = [png(image) for image in rendered]
    src = EncodedSource([lambda b=b: b for b in blobs], None, [f"{i}.png" for i in range(4)])
    got = hi.run(lm, src, HeadImportanceParams(batch_size=4, chunk_size=96))
    arrays, summary = got.arrays, got.summary
    assert arrays["cls_cosine_drop"].shape == arrays["patch_change"].shape == (12, 6)
    assert arrays["cls_cosine_after"].shape == (4, 12, 6)
    assert not {"accuracy_drop", "prob_drop", "loss_change", "taylor", "prob_after", "labels"} & set(arrays)
    assert summary["objective"] == "task-free"
    assert set(summary["left_out"]) == {"accuracy_drop", "prob_drop", "loss_change", "taylor"}
    assert summary["spearman"] is not None and summary["spearman"] > 0.5
    check_result(KIND, arrays, summary)


def png(image):
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def test_a_probe_on_a_zip_of_three_classes_keeps_the_schema():
    """An ImageFolder zip of 3 classes on a backbone: probe metrics of only 3 classes."""
    import zipfile

    from vitscope.contracts.jobs import normalize_job
    from vitscope.vit.analysis import registry

    lm = micro_backbone("vit")
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(buffer, "w") as archive:
        for c, name in enumerate(("dark", "mid", "light")):
            for i in range(4):
                pixels = np.full((32, 32, 3), 40 + 80 * c, np.uint8) + rng.integers(
                    0, 20, (32, 32, 3), np.uint8
                )
                png = io.BytesIO()
                Image.fromarray(pixels).save(png, format="PNG")
                archive.writestr(f"{name}/{i}.png", png.getvalue())
    zip_id = "0" * 64
    spec = normalize_job({"kind": "head-importance", "model": "demo", "inputs": {"zip": zip_id}})
    result = registry.execute(lm, spec, {zip_id: buffer.getvalue()}.__getitem__, lambda *_: None)
    assert result.summary["objective"] == "probe" and result.summary["probe"]["classes"] == [
        "dark",
        "light",
        "mid",
    ]
    assert result.arrays["prob_after"].shape == (12, 2, 4) and "accuracy_drop" in result.arrays
