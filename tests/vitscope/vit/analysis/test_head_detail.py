"""The head-detail page's light kinds: one image's attention in every head (`head-detail`), one head of
one image pruned partially (`head-pruning`), each checked against the model run by hand."""

import io
from functools import partial

import numpy as np
import pytest
import torch
from PIL import Image

from tests.utils.models import micro, micro_backbone
from vitscope.contracts.errors import UserError
from vitscope.contracts.jobs import normalize_job
from vitscope.contracts.kinds.head_detail import HeadDetailParams
from vitscope.contracts.kinds.head_importance import HeadImportanceParams
from vitscope.contracts.kinds.head_pruning import MODES, HeadPruningParams
from vitscope.vit.analysis import head_detail as hd
from vitscope.vit.analysis import head_importance as hi
from vitscope.vit.analysis import registry
from vitscope.vit.data.inputs import EncodedSource, SynthSource
from vitscope.vit.models import intervene

IMAGE = 5
"""The image of `SynthSource(8)` the tests look at."""


def images_of(lm, n=8):
    """SynthSource(n)'s images and labels as the model sees them, streamed the dataset-wide way."""
    batch = next(SynthSource(n).batches(n, lm.input_geometry))
    return batch.images, batch.labels


def captured(lm, image):
    """Every layer's attention (L, H, T, T) float32 and the logits (1, C) of one uint8 image (h, w, 3)."""
    with torch.no_grad(), intervene(lm.parts, capture=True) as rec:
        logits = lm.forward(lm.preprocess(image[None]))
    return torch.stack([rec.attentions[layer][0] for layer in range(lm.num_layers)]).numpy(), logits


def png(image):
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def uploads(n=3, labels=None, seed=1):
    """`n` random 32 x 32 PNG uploads, labelled or not."""
    rng = np.random.default_rng(seed)
    blobs = [png(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(n)]
    return EncodedSource([partial(bytes, b) for b in blobs], labels, [f"{i}.png" for i in range(n)])


def execute(kind, lm, params):
    """Run `kind` the way the worker does: `registry.execute` checks the result against the kind's schema."""
    spec = normalize_job(
        {"kind": kind, "model": "demo", "inputs": {"dataset": "synthscenes:8"}, "params": params}
    )
    return registry.execute(lm, spec, lambda _id: b"", lambda *_: None)


# --- head-detail ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def detail():
    """micro ViT (2 layers x 4 heads, 17 tokens), image 5 of 8, every layer."""
    params = HeadDetailParams(image=IMAGE, bipartite_links=20, hist_bins=10)
    return hd.run(micro("vit"), SynthSource(8), params)


def test_attention_is_each_heads_matrix_captured_on_that_image(detail):
    lm = micro("vit")
    images, _ = images_of(lm)
    expected, _ = captured(lm, images[IMAGE])
    attention = detail.arrays["attention"]
    assert attention.dtype == np.float16 and attention.shape == (2, 4, 17, 17)
    np.testing.assert_allclose(attention.astype(np.float32), expected, rtol=1e-3, atol=1e-7)
    np.testing.assert_array_equal(detail.arrays["image"], images[IMAGE])
    assert detail.summary["matrix_bytes"] == attention.nbytes == 2 * 4 * 17 * 17 * 2


def test_summary_says_what_the_model_made_of_the_image(detail):
    lm = micro("vit")
    images, labels = images_of(lm)
    _, logits = captured(lm, images[IMAGE])
    probs = logits[0].softmax(-1)
    top = probs.topk(5)
    summary = detail.summary
    assert summary["image"] == IMAGE and summary["images"] == 8 and summary["layers"] == [0, 1]
    assert summary["label"] == labels[IMAGE] and summary["prediction"] == int(probs.argmax())
    assert [entry["index"] for entry in summary["top5"]] == top.indices.tolist()
    assert [entry["label"] for entry in summary["top5"]] == [lm.labels[i] for i in top.indices]
    np.testing.assert_allclose([entry["prob"] for entry in summary["top5"]], top.values, rtol=1e-6)


def test_histograms_equal_numpy_histogram_of_each_head(detail):
    lm = micro("vit")
    matrices, _ = captured(lm, images_of(lm)[0][IMAGE])
    counts, edges = detail.arrays["hist_counts"], detail.arrays["hist_edges"]
    assert counts.shape == (2, 4, 10) and edges.shape == (2, 4, 11)
    for layer in range(2):
        for head in range(4):
            values = matrices[layer, head]
            want_counts, want_edges = np.histogram(values, 10, range=(0, values.max()))
            np.testing.assert_array_equal(counts[layer, head], want_counts, err_msg=f"L{layer} H{head}")
            np.testing.assert_allclose(edges[layer, head], want_edges, rtol=1e-6, err_msg=f"L{layer} H{head}")
    assert (counts.sum(-1) == 17 * 17).all()


@pytest.mark.parametrize("bins", [3, 10, 30])
def test_a_value_on_an_inner_edge_is_counted_in_the_bin_that_edge_opens(bins):
    values = np.linspace(0, 0.3, 31, dtype=np.float32)  # multiples of 0.01: on the edges of every bins here
    counts, edges = hd.histograms(torch.from_numpy(values).view(1, 1, 31), bins)
    np.testing.assert_allclose(edges[0], np.histogram_bin_edges(values, bins, (0, values.max())), rtol=1e-6)
    by_edges, _ = np.histogram(values, edges[0].numpy())  # [a, b) bins, the last one closed
    np.testing.assert_array_equal(counts[0], by_edges)


def test_histograms_of_a_batch_of_heads_are_numpys_head_by_head():
    matrices = torch.rand(2, 3, 9, 9, generator=torch.Generator().manual_seed(0)).softmax(-1)
    counts, edges = hd.histograms(matrices, 7)
    assert counts.dtype == torch.int64 and counts.shape == (2, 3, 7) and edges.shape == (2, 3, 8)
    for index in np.ndindex(2, 3):
        values = matrices[index].numpy()
        want_counts, want_edges = np.histogram(values, 7, range=(0, values.max()))
        np.testing.assert_array_equal(counts[index], want_counts)
        np.testing.assert_allclose(edges[index], want_edges, rtol=1e-6)


def test_links_are_each_heads_strongest_entries_flagged_by_prefix(detail):
    lm = micro("vit")
    matrices, _ = captured(lm, images_of(lm)[0][IMAGE])
    links = detail.arrays["links"]
    assert links.shape == (2, 4, 20, 4)
    for layer in range(2):
        for head in range(4):
            matrix, got = matrices[layer, head], links[layer, head]
            query, key = got[:, 0].astype(int), got[:, 1].astype(int)
            np.testing.assert_allclose(got[:, 2], np.sort(matrix.ravel())[::-1][:20], rtol=1e-6)
            np.testing.assert_allclose(got[:, 2], matrix[query, key], rtol=1e-6)
            np.testing.assert_array_equal(got[:, 3], (query < 1) | (key < 1))  # one prefix token: CLS
            assert len(set(zip(query, key, strict=True))) == 20


def test_bipartite_links_are_the_strongest_entries_flagged_by_prefix():
    matrix = torch.tensor([[0.1, 0.9, 0.0], [0.2, 0.3, 0.5], [0.6, 0.05, 0.35]])
    links = hd.bipartite_links(matrix, n_prefix=1, k=4)
    expected = [[0, 1, 0.9, 1], [2, 0, 0.6, 1], [1, 2, 0.5, 0], [2, 2, 0.35, 0]]
    np.testing.assert_allclose(links.numpy(), expected)


def test_bipartite_links_break_ties_in_token_order():
    links = hd.bipartite_links(torch.full((2, 2), 0.5), n_prefix=0, k=3)
    np.testing.assert_array_equal(links.numpy(), [[0, 0, 0.5, 0], [0, 1, 0.5, 0], [1, 0, 0.5, 0]])


def test_one_layer_is_that_slice_of_the_every_layer_run(detail):
    params = HeadDetailParams(image=IMAGE, layer=1, bipartite_links=20, hist_bins=10)
    one = hd.run(micro("vit"), SynthSource(8), params)
    assert one.arrays.keys() == detail.arrays.keys()
    # layer 0, not captured, keeps the fused attention kernel: layer 1 agrees to float32 rounding
    for name, rtol in (("attention", 1e-3), ("hist_edges", 1e-5), ("links", 1e-5)):
        assert one.arrays[name].shape[0] == 1, name
        np.testing.assert_allclose(one.arrays[name], detail.arrays[name][1:], rtol=rtol, err_msg=name)
    moved = np.abs(one.arrays["hist_counts"] - detail.arrays["hist_counts"][1:]).sum(-1)
    assert one.arrays["hist_counts"].shape == (1, 4, 10) and moved.max() <= 2  # at most one value on an edge
    np.testing.assert_array_equal(one.arrays["image"], detail.arrays["image"])
    assert one.summary["layers"] == [1] and one.summary["matrix_bytes"] == detail.summary["matrix_bytes"] // 2


def test_links_stop_at_every_entry_of_the_matrix():
    params = HeadDetailParams(image=0, layer=0, bipartite_links=10_000)
    links = hd.run(micro("vit"), SynthSource(2), params).arrays["links"]
    assert links.shape == (1, 4, 17 * 17, 4)
    pairs = {(int(q), int(k)) for q, k in links[0, 3, :, :2]}
    assert pairs == {(q, k) for q in range(17) for k in range(17)}


def test_a_backbone_has_attention_but_no_predictions():
    got = hd.run(micro_backbone("vit"), SynthSource(2), HeadDetailParams(image=1, hist_bins=5))
    assert got.arrays["attention"].shape == (2, 4, 17, 17)
    assert got.summary["prediction"] is None and got.summary["top5"] == []


# --- head-pruning -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def importance():
    """Head importance of micro ViT on the same 8 SynthScenes images: the exact single-head ablations."""
    return hi.run(micro("vit"), SynthSource(8), HeadImportanceParams(batch_size=8, taylor=False))


@pytest.mark.parametrize(("layer", "head"), [(0, 1), (1, 2)])
def test_pruning_none_is_clean_and_whole_head_is_the_exact_single_head_ablation(importance, layer, head):
    lm = micro("vit")
    params = HeadPruningParams(image=IMAGE, layer=layer, head=head)
    got = hd.run_pruning(lm, SynthSource(8), params)
    images, labels = images_of(lm)
    clean = captured(lm, images[IMAGE])[1][0].softmax(-1)
    arrays, label = got.arrays, int(labels[IMAGE])
    assert set(arrays) == {"target_prob", "top5_idx", "top5_prob"} and got.summary["target"] == label
    none, whole = MODES.index("none"), MODES.index("whole_head")
    np.testing.assert_allclose(arrays["target_prob"][none], clean[label], rtol=1e-5)
    np.testing.assert_allclose(arrays["target_prob"][none], importance.arrays["prob_base"][IMAGE], atol=1e-6)
    np.testing.assert_array_equal(arrays["top5_idx"][none], clean.topk(5).indices)
    np.testing.assert_allclose(arrays["top5_prob"][none], clean.topk(5).values, rtol=1e-5)
    after = importance.arrays["prob_after"][IMAGE, layer, head]
    np.testing.assert_allclose(arrays["target_prob"][whole], after, atol=1e-6)
    assert abs(arrays["target_prob"][whole] - arrays["target_prob"][none]) > 1e-6
    patch_to_patch = arrays["target_prob"][MODES.index("patch_to_patch")]
    if layer == lm.num_layers - 1:  # the classifier reads the CLS token, which no patch query feeds there
        assert patch_to_patch == arrays["target_prob"][none]
    else:
        assert abs(patch_to_patch - arrays["target_prob"][none]) > 1e-6
    assert arrays["top5_prob"].shape == (len(MODES), 5) and (np.diff(arrays["top5_prob"], axis=-1) <= 0).all()


def test_summary_names_the_head_the_modes_and_why_the_cosine_is_left_out():
    got = hd.run_pruning(micro("vit"), SynthSource(8), HeadPruningParams(image=IMAGE, layer=1, head=3))
    summary = got.summary
    assert (summary["image"], summary["layer"], summary["head"]) == (IMAGE, 1, 3)
    assert summary["modes"] == list(MODES) and set(summary["left_out"]) == {"cls_cosine"}


def test_several_images_prune_as_one_batch_each_as_alone(importance):
    lm = micro("vit")
    images, labels = images_of(lm)
    pick = [1, IMAGE]
    pixels, target = lm.preprocess(images[pick]), torch.as_tensor(labels[pick])
    together = hd.partial_pruning(lm, pixels, target, layer=1, head=2)
    assert together["target_prob"].shape == (len(MODES), 2)
    assert together["top5_idx"].shape == together["top5_prob"].shape == (len(MODES), 2, 5)
    assert together["target"].tolist() == target.tolist()
    for i in range(2):
        alone = hd.partial_pruning(lm, pixels[i : i + 1], target[i : i + 1], layer=1, head=2)
        assert alone.pop("target").tolist() == [target[i]]
        for name, value in alone.items():
            torch.testing.assert_close(together[name][:, i], value[:, 0], atol=1e-6, rtol=0, msg=name)
    whole = together["target_prob"][MODES.index("whole_head")]
    np.testing.assert_allclose(whole, importance.arrays["prob_after"][pick, 1, 2], atol=1e-6)


def test_an_image_without_a_class_label_is_scored_on_its_clean_top1():
    lm = micro("vit")
    pixels = lm.preprocess(images_of(lm, 2)[0])
    got = hd.partial_pruning(lm, pixels, torch.tensor([-1, len(lm.labels)]), layer=0, head=0)
    with torch.no_grad():
        top1 = lm.forward(pixels).argmax(-1)
    assert got["target"].tolist() == top1.tolist()  # taken from the clean pass, no forward of its own
    assert got["top5_idx"][0, :, 0].tolist() == top1.tolist()  # mode `none` is the clean pass
    torch.testing.assert_close(got["target_prob"][0], got["top5_prob"][0, :, 0])


def test_partial_modes_zero_the_blocks_named():
    layout = micro("deit-distilled").layout  # CLS, distillation token, 16 patches
    masks = hd.partial_masks(layout, 4, head=2)
    mode = dict(zip(MODES, masks[:, 2], strict=True))
    assert masks[:, [0, 1, 3]].eq(1).all() and mode["none"].eq(1).all() and mode["whole_head"].eq(0).all()
    assert mode["cls_row"][0].eq(0).all() and mode["cls_row"][1:].eq(1).all()
    assert mode["cls_column"][:, 0].eq(0).all() and mode["cls_column"][:, 1:].eq(1).all()
    p2p = mode["patch_to_patch"]
    assert p2p[2:, 2:].eq(0).all() and p2p[:2].eq(1).all() and p2p[:, :2].eq(1).all()
    assert torch.equal(mode["cls_row_column"], mode["cls_row"] * mode["cls_column"])


def test_an_unlabelled_upload_is_scored_against_the_clean_top1_and_a_labelled_one_by_its_label():
    lm = micro("vit")
    image = next(uploads().batches(3, lm.input_geometry)).images[2]
    clean = captured(lm, image)[1][0].softmax(-1)
    top1 = int(clean.argmax())
    got = hd.run_pruning(lm, uploads(), HeadPruningParams(image=2, layer=1, head=0))
    none = MODES.index("none")
    assert got.summary["label"] == -1 and got.summary["target"] == top1
    assert got.arrays["target_prob"][none] == got.arrays["top5_prob"][none, 0]
    np.testing.assert_allclose(got.arrays["target_prob"][none], clean[top1], rtol=1e-5)
    other = (top1 + 1) % len(lm.labels)
    labelled = hd.run_pruning(lm, uploads(labels=[0, 0, other]), HeadPruningParams(image=2, layer=1, head=0))
    assert labelled.summary["label"] == labelled.summary["target"] == other
    np.testing.assert_allclose(labelled.arrays["target_prob"][none], clean[other], rtol=1e-5)


def test_pruning_a_backbone_reports_the_cls_cosine():
    lm = micro_backbone("vit")
    exact = hi.run(lm, uploads(4), HeadImportanceParams(batch_size=4, taylor=False))
    got = hd.run_pruning(lm, uploads(4), HeadPruningParams(image=3, layer=1, head=2))
    cosine = got.arrays["cls_cosine"]
    assert set(got.arrays) == {"cls_cosine"} and cosine.shape == (len(MODES),)
    np.testing.assert_allclose(cosine[MODES.index("none")], 1, atol=1e-6)
    whole = exact.arrays["cls_cosine_after"][3, 1, 2]
    np.testing.assert_allclose(cosine[MODES.index("whole_head")], whole, atol=1e-6)
    assert cosine.min() < 1 - 1e-6
    assert got.summary["target"] is None
    assert set(got.summary["left_out"]) == {"target_prob", "top5_idx", "top5_prob"}


# --- both kinds -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("head-detail", {"image": 3, "bipartite_links": 7, "hist_bins": 6}),
        ("head-pruning", {"image": 3, "layer": 1, "head": 1}),
    ],
)
def test_a_run_keeps_its_kinds_schema_and_repeats_exactly(kind, params):
    first = execute(kind, micro("vit"), params)  # registry.execute checks the result against the schema
    torch.manual_seed(99)  # nothing may depend on the global generator
    second = execute(kind, micro("vit"), params)
    assert first.summary["model"]["classifier"] is True and first.summary == second.summary
    assert first.arrays.keys() == second.arrays.keys()
    for name, array in first.arrays.items():
        np.testing.assert_array_equal(array, second.arrays[name], err_msg=f"{kind}: {name}")


@pytest.mark.parametrize(
    ("run", "params", "message"),
    [
        (hd.run, HeadDetailParams(layer=2), "layer 2 is out of range"),
        (hd.run, HeadDetailParams(image=8), "image 8 is out of range"),
        (hd.run_pruning, HeadPruningParams(layer=2), "layer 2 is out of range"),
        (hd.run_pruning, HeadPruningParams(head=4), "head 4 is out of range"),
        (hd.run_pruning, HeadPruningParams(image=8), "image 8 is out of range"),
    ],
)
def test_indices_out_of_the_model_or_the_inputs_are_refused(run, params, message):
    with pytest.raises(UserError, match=message):
        run(micro("vit"), SynthSource(8), params)


def test_bipartite_links_are_the_first_k_of_a_stable_sort_of_the_whole_matrix():
    gen = torch.Generator().manual_seed(3)
    matrix = torch.rand(17, 17, generator=gen).round(decimals=1)  # many ties, some at the k-th value
    matrix[:, 5:] = 0
    for k in (1, 7, 40, 17 * 17):
        order = torch.sort(matrix.flatten(), descending=True, stable=True).indices[:k]
        links = hd.bipartite_links(matrix, n_prefix=1, k=k)
        assert torch.equal(links[:, 0].long() * 17 + links[:, 1].long(), order), k


def test_clicks_on_one_image_share_its_clean_pass_and_give_what_a_fresh_pass_gives(monkeypatch):
    lm = micro("vit")
    images, labels = images_of(lm)
    first, second = lm.preprocess(images[:1]), lm.preprocess(images[1:2])
    label = torch.as_tensor(labels[:1])
    hd._CLEAN_PASSES.pop(lm.model, None)
    fresh = hd.partial_pruning(lm, first, label, layer=1, head=2)
    kept = hd._CLEAN_PASSES[lm.model]
    assert len(kept) == 1
    [entry] = kept.values()
    again = hd.partial_pruning(lm, first.clone(), label, layer=1, head=2)  # same pixels, another tensor
    other_head = hd.partial_pruning(lm, first, label, layer=0, head=1)
    assert len(kept) == 1 and next(iter(kept.values())) is entry  # one clean pass served three clicks
    for name in fresh:
        torch.testing.assert_close(again[name], fresh[name], atol=0, rtol=0, msg=name)
    hd._CLEAN_PASSES.pop(lm.model)
    alone = hd.partial_pruning(lm, first, label, layer=0, head=1)
    for name in alone:
        torch.testing.assert_close(other_head[name], alone[name], atol=0, rtol=0, msg=name)
    # a bounded store: past its bytes the image clicked longest ago goes
    monkeypatch.setattr(hd, "CLEAN_PASS_BYTES", entry.nbytes + 1)
    hd.partial_pruning(lm, second, label, layer=0, head=0)
    assert len(hd._CLEAN_PASSES[lm.model]) == 1
