"""The attention-patterns analysis: sampling, clustering and the whole run (one head on one image is the
`head-detail` kind, tests/vitscope/vit/analysis/test_head_detail.py)."""

import numpy as np
import pytest
import torch

from tests.utils.models import micro
from vitscope.contracts.kinds import check_result
from vitscope.contracts.kinds.attention_patterns import KIND, AttentionPatternsParams
from vitscope.vit.analysis.attention_patterns import run
from vitscope.vit.analysis.patterns_sampling import PatternSampler, align_to_query
from vitscope.vit.analysis.patterns_summary import TrainingConfig, summarise_maps
from vitscope.vit.data.inputs import SynthSource
from vitscope.vit.models.layout import TokenLayout

KINDS = ("self", "ring", "uniform", "cls")
CPU = torch.device("cpu")


def layout_of(grid: int, prefix: tuple[str, ...] = ("cls",)) -> TokenLayout:
    return TokenLayout(prefix, (grid, grid), 8, (8 * grid, 8 * grid))


def synthetic_attention(kinds, layout, batch, g, noise=0.1):
    """Attention (B, heads, T, T) whose heads follow known patterns.

    self: every token attends to itself; ring: patch queries attend to their 8 neighbours;
    uniform: all tokens alike; cls: every query attends to the CLS token (a "CLS column").
    """
    t, n0, (h, w) = layout.n_tokens, layout.n_prefix, layout.grid
    cy, cx = torch.arange(h * w) // w, torch.arange(h * w) % w
    cheb = torch.maximum((cy[:, None] - cy).abs(), (cx[:, None] - cx).abs())
    logits = torch.zeros(len(kinds), t, t)
    for i, kind in enumerate(kinds):
        if kind == "self":
            logits[i] += 8 * torch.eye(t)
        elif kind == "ring":
            logits[i, n0:, n0:] += 6 * (cheb == 1)
        elif kind == "cls":
            logits[i, :, layout.cls_index] += 5
    return (logits + noise * torch.randn(batch, len(kinds), t, t, generator=g)).softmax(-1)


def feed(sampler, layouts_probs):
    """Run batches of (indices, [probs per layer]) through the sampler sink."""
    for indices, per_layer in layouts_probs:
        sampler.start_batch(indices)
        for layer, probs in enumerate(per_layer):
            sampler(layer, probs)


def synthetic_batches(kinds, layout, images, batch, layers=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, images, batch):
        n = min(batch, images - start)
        out.append(
            (
                torch.arange(start, start + n),
                [synthetic_attention(kinds, layout, n, g) for _ in range(layers)],
            )
        )
    return out


def test_every_head_gets_exactly_maps_per_head():
    layout = layout_of(4)
    sampler = PatternSampler(layout, layers=2, heads=4, capacity=24, seed=0, device=CPU)
    feed(sampler, synthetic_batches(KINDS, layout, images=30, batch=7, layers=2))
    samples = sampler.samples()
    counts = torch.bincount(samples["patch"].head, minlength=8)
    assert counts.tolist() == [24] * 8
    assert torch.bincount(samples["cls"].head, minlength=8).tolist() == [24] * 8


def test_heads_get_every_candidate_when_there_are_fewer_than_maps_per_head():
    layout = layout_of(4)
    sampler = PatternSampler(layout, layers=1, heads=4, capacity=24, seed=0, device=CPU)
    feed(sampler, synthetic_batches(KINDS, layout, images=5, batch=2))
    cls = sampler.samples()["cls"]
    assert torch.bincount(cls.head).tolist() == [5] * 4
    assert sorted(cls.image[cls.head == 2].tolist()) == [0, 1, 2, 3, 4]


def test_sampled_maps_are_renormalised_patch_rows_of_the_attention():
    layout = layout_of(3, ("cls", "distillation"))
    batches = synthetic_batches(KINDS, layout, images=6, batch=4)
    sampler = PatternSampler(layout, layers=1, heads=4, capacity=5, seed=1, device=CPU)
    feed(sampler, batches)
    probs = torch.cat([per_layer[0] for _, per_layer in batches])  # (N, heads, T, T)
    for q, sample in sampler.samples().items():
        rows = probs[sample.image, sample.head, sample.query]  # (M, T)
        patch = rows[:, layout.n_prefix :]
        torch.testing.assert_close(sample.maps, patch / patch.sum(1, keepdim=True))
        torch.testing.assert_close(sample.prefix_share, rows[:, : layout.n_prefix].sum(1))
        if q == "cls":
            assert (sample.query == layout.cls_index).all()
        else:
            assert (sample.query >= layout.n_prefix).all()
        pairs = {
            (int(i), int(h), int(t)) for i, h, t in zip(sample.image, sample.head, sample.query, strict=True)
        }
        assert len(pairs) == len(sample.head)  # without replacement


def test_sampling_is_uniform_over_candidates():
    layout = layout_of(2)  # 4 patch queries per image
    batches = synthetic_batches(("uniform",), layout, images=10, batch=3)
    hits = torch.zeros(10, 4)
    trials = 300
    for seed in range(trials):
        sampler = PatternSampler(layout, layers=1, heads=1, capacity=10, seed=seed, device=CPU)
        feed(sampler, batches)
        patch = sampler.samples()["patch"]
        hits[patch.image, patch.query - layout.n_prefix] += 1
    expected = trials * 10 / 40  # each of 40 candidates is kept with probability 1/4
    assert hits.sum() == trials * 10
    assert (hits - expected).abs().max() < 5 * (expected * 0.75) ** 0.5


def test_align_to_query_moves_the_query_to_the_centre():
    layout = layout_of(3)
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(9, 9, generator=g)
    query = torch.arange(9) + layout.n_prefix
    aligned = align_to_query(maps, query, layout)
    assert aligned.shape == (9, 5, 5)
    for i in range(9):
        qy, qx = divmod(i, 3)
        for k in range(9):
            ky, kx = divmod(k, 3)
            assert aligned[i, ky - qy + 2, kx - qx + 2] == maps[i, k]
    assert torch.allclose(aligned.sum((1, 2)), maps.sum(1))
    self_maps = align_to_query(torch.eye(9), query, layout)
    assert (self_maps[:, 2, 2] == 1).all()


def test_self_heads_share_a_cluster_and_the_autoencoder_beats_pca():
    layout = layout_of(8)
    kinds = KINDS * 2
    sampler = PatternSampler(layout, layers=1, heads=len(kinds), capacity=64, seed=0, device=CPU)
    feed(sampler, synthetic_batches(kinds, layout, images=32, batch=8))
    patch = sampler.samples()["patch"]
    config = TrainingConfig(latent_dim=8, epochs=40, batch_size=32, clusters=4)
    summary = summarise_maps(layout.to_grid(patch.maps), patch.head, len(kinds), config)
    assert summary.ae_error < 0.85 * summary.pca_error
    self_heads = [i for i, kind in enumerate(kinds) if kind == "self"]
    home = summary.head_mix[self_heads].argmax(1)
    assert (home == home[0]).all()
    assert (summary.head_mix[self_heads, home[0]] > 0.95).all()
    typical = summary.typical[home[0]]
    assert (typical.flatten(1).amax(1) > 0.5).all()  # its most typical maps are single peaks
    torch.testing.assert_close(summary.head_mix.sum(1), torch.ones(len(kinds)))


def test_aligned_self_maps_decode_to_a_peak_at_the_centre():
    layout = layout_of(6)
    kinds = ("self", "ring")
    sampler = PatternSampler(layout, layers=1, heads=2, capacity=32, seed=0, device=CPU)
    feed(sampler, synthetic_batches(kinds, layout, images=4, batch=4))
    patch = sampler.samples()["patch"]
    aligned = align_to_query(patch.maps, patch.query, layout)
    config = TrainingConfig(latent_dim=4, epochs=1, clusters=2)
    summary = summarise_maps(aligned, patch.head, 2, config)
    home = int(summary.head_mix[0].argmax())
    assert summary.head_mix[0, home] == 1
    assert summary.head_mix[1, home] == 0
    prototype = summary.prototypes[home]
    assert prototype.shape == (11, 11)
    assert prototype[5, 5] == prototype.max() > 0.5
    assert prototype.sum() - prototype[5, 5] < 0.5 * prototype[5, 5]


SMALL = AttentionPatternsParams(
    maps_per_head=8,
    latent_dim=4,
    epochs=2,
    clusters=3,
    typical_per_cluster=2,
    batch_size=4,
)


PROGRESS: list[tuple[float, str]] = []


@pytest.fixture(scope="module")
def small_run():
    return run(micro("vit"), SynthSource(8), SMALL, lambda f, m: PROGRESS.append((f, m)))


def test_run_reports_progress_through_sampling_and_every_epoch(small_run):
    fractions = [f for f, _ in PROGRESS]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    messages = [m for _, m in PROGRESS]
    assert sum(m.startswith("sampling") for m in messages) == 2  # one per batch of 4 images
    for q in ("patch", "cls"):
        assert sum(m.startswith(f"{q} autoencoder epoch") for m in messages) == SMALL.epochs


def test_run_returns_the_contract_arrays(small_run):
    a, heads = small_run.arrays, 2 * 4
    for q, m in (("patch", 64), ("cls", 64)):
        assert a[f"embedding_{q}"].shape == (m, 2)
        assert np.bincount(a[f"sample_head_{q}"]).tolist() == [8] * heads
        assert a[f"cluster_{q}"].shape == (m,)
        assert a[f"head_points_{q}"].shape == (heads, 2)
        assert a[f"head_mix_{q}"].shape == (heads, 3)
        assert a[f"prototypes_{q}"].shape == (3, 4, 4)
        assert a[f"typical_{q}"].shape == (3, 2, 4, 4)
        assert a[f"prototypes_{q}"].min() >= 0
        np.testing.assert_allclose(a[f"typical_{q}"].sum((2, 3)), 1, rtol=1e-5)
    s = small_run.summary
    assert set(s["ae_error"]) == {"patch", "cls"}
    assert s["maps_per_head"] == {"patch": 8, "cls": 8}
    assert not {"detail", "detail_matrix", "bipartite"} & (set(a) | set(s))  # the head-detail kind's now
    check_result(KIND, a, s)


def test_run_is_identical_for_the_same_seed(small_run):
    again = run(micro("vit"), SynthSource(8), SMALL)
    assert again.arrays.keys() == small_run.arrays.keys()
    for name, value in small_run.arrays.items():
        np.testing.assert_array_equal(again.arrays[name], value, err_msg=name)
    assert again.summary == small_run.summary
