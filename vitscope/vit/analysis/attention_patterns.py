"""The `attention-patterns` analysis: what kinds of per-query attention maps heads learn.

View D of Li et al. (TVCG 2023), made concrete (the paper leaves the inputs, the model and
the projection unspecified; PAPERS.md 1(c)):

1. One pass over the dataset with attention capture on every layer; a sink samples, per
   head and query type (patch queries, the CLS query), `maps_per_head` per-query maps
   uniformly (seeded reservoir sampling, `vitscope.vit.analysis.patterns_sampling`). A map is a
   query's attention over the *patch* keys, prefix keys dropped and renormalised to sum 1,
   on the h x w grid; the dropped share is kept as `prefix_share_q`. Optionally patch-query
   maps are re-centred on their query (`align_patch_queries`), which turns shift-equivariant
   heads (self, local) into one map each.
2. Per query type, a convolutional autoencoder (PCA-initialised, `vitscope.vit.analysis.autoencoder`)
   is trained on the maps scaled to a peak of 1; its held-out MSE is reported beside PCA's
   with the same number of components.
3. Summaries (`vitscope.vit.analysis.patterns_summary`): 2D PCA of the latents (density + one
   point per head), k-means clusters with decoded prototypes, each head's mix over the
   clusters, and the real maps nearest each centroid.

Nothing here depends on which head or image a user looks at: one head of one image in full (its
matrix, value histogram and bipartite links) is the light `head-detail` kind
(`vitscope.vit.analysis.head_detail`).
"""

from __future__ import annotations

import torch

from vitscope.contracts.kinds.attention_patterns import AttentionPatternsParams
from vitscope.vit.analysis.autoencoder import EpochCallback
from vitscope.vit.analysis.base import AnalysisResult, Progress, no_progress, require_images, stream
from vitscope.vit.analysis.patterns_sampling import QUERY_TYPES, MapSample, PatternSampler, align_to_query
from vitscope.vit.analysis.patterns_summary import PatternSummary, TrainingConfig, summarise_maps
from vitscope.vit.data.inputs import ImageSource
from vitscope.vit.models import LoadedModel, intervene
from vitscope.vit.models.layout import TokenLayout

SAMPLING_SHARE = 0.3  # of the progress bar; the two trainings share the rest
TRAIN_SHARE = (1.0 - SAMPLING_SHARE) / len(QUERY_TYPES)


def run(
    lm: LoadedModel,
    source: ImageSource,
    params: AttentionPatternsParams,
    progress: Progress = no_progress,
) -> AnalysisResult:
    """Sample maps, train the autoencoders, summarise.

    Arrays per query type q in {patch, cls}: `embedding_q` (M, 2), `sample_head_q` (M,)
    layer*H+head, `sample_image_q` (M,), `sample_query_q` (M,) query token index,
    `prefix_share_q` (M,), `split_q` (M,) 0 train / 1 val / 2 held-out, `cluster_q` (M,),
    `head_points_q` (L*H, 2), `head_mix_q` (L*H, k), `prototypes_q` (k, h, w),
    `typical_q` (k, t, h, w), `typical_index_q` (k, t), `loss_curve_q` (E+1, 2).
    Sampled and typical maps are probabilities over patch keys; prototypes are decoded in the
    network's scale (peak 1 per map), clipped at 0. With alignment patch maps are (2h-1, 2w-1).
    """
    require_images(source)
    samples = _sample(lm, source, params, progress)
    result = AnalysisResult()
    summaries: dict[str, PatternSummary] = {}
    for i, q in enumerate(QUERY_TYPES):
        summaries[q] = _summarise_query_type(
            lm, q, samples[q], params, _train_progress(progress, i, q, params)
        )
        _store_patterns(result, q, samples[q], summaries[q])
    result.summary = _summary(lm, source, params, samples, summaries)
    progress(1.0, "done")
    return result


def _summarise_query_type(
    lm: LoadedModel, q: str, sample: MapSample, params: AttentionPatternsParams, on_epoch: EpochCallback
) -> PatternSummary:
    """Train and summarise one query type's maps (aligned on the query first, if asked)."""
    maps = _as_maps(sample, lm.layout, params.align_patch_queries and q == "patch")
    return summarise_maps(maps, sample.head, lm.num_layers * lm.num_heads, _config(params), on_epoch)


def _train_progress(progress: Progress, i: int, q: str, params: AttentionPatternsParams) -> EpochCallback:
    """Report the start of the i-th query type's training; return its epoch callback (its share of the bar)."""
    start = SAMPLING_SHARE + i * TRAIN_SHARE
    progress(start, f"{q} autoencoder: training for {params.epochs} epochs")

    def on_epoch(epoch: int, val: float) -> None:
        message = f"{q} autoencoder epoch {epoch}, val MSE {val:.5f}"
        progress(start + TRAIN_SHARE * epoch / params.epochs, message)

    return on_epoch


def _config(params: AttentionPatternsParams) -> TrainingConfig:
    return TrainingConfig(
        latent_dim=params.latent_dim,
        epochs=params.epochs,
        batch_size=params.train_batch_size,
        learning_rate=params.learning_rate,
        clusters=params.clusters,
        typical=params.typical_per_cluster,
        seed=params.seed,
        width=params.ae_width,
    )


def _sample(
    lm: LoadedModel, source: ImageSource, params: AttentionPatternsParams, progress: Progress
) -> dict[str, MapSample]:
    """One pass over the source: sampled maps per query type."""
    sampler = PatternSampler(
        lm.layout, lm.num_layers, lm.num_heads, params.maps_per_head, params.seed, lm.device
    )

    label, span = "sampling attention maps", (0.0, SAMPLING_SHARE)
    with torch.no_grad(), intervene(lm.parts, capture=True, sink=sampler):
        for batch in stream(source, params.batch_size, lm.input_geometry, progress, label, span):
            indices = torch.as_tensor(batch.indices)
            sampler.start_batch(indices)
            lm.forward(lm.preprocess(batch.images))
    return sampler.samples()


def _as_maps(sample: MapSample, layout: TokenLayout, align: bool) -> torch.Tensor:
    """The sample's maps as images: (M, h, w), or (M, 2h-1, 2w-1) re-centred on the query."""
    if align:
        return align_to_query(sample.maps, sample.query, layout)
    return layout.to_grid(sample.maps)


def _store_patterns(result: AnalysisResult, q: str, sample: MapSample, summary: PatternSummary) -> None:
    for name, value in (
        ("embedding", summary.embedding),
        ("sample_head", sample.head),
        ("sample_image", sample.image),
        ("sample_query", sample.query),
        ("prefix_share", sample.prefix_share),
        ("split", summary.split),
        ("cluster", summary.cluster),
        ("head_points", summary.head_points),
        ("head_mix", summary.head_mix),
        ("prototypes", summary.prototypes),
        ("typical", summary.typical),
        ("typical_index", summary.typical_index),
        ("loss_curve", summary.curve),
    ):
        result.add(f"{name}_{q}", value)


def _summary(
    lm: LoadedModel,
    source: ImageSource,
    params: AttentionPatternsParams,
    samples: dict[str, MapSample],
    summaries: dict[str, PatternSummary],
) -> dict[str, object]:
    heads = lm.num_layers * lm.num_heads
    return {
        "ae_error": {q: s.ae_error for q, s in summaries.items()},
        "pca_error": {q: s.pca_error for q, s in summaries.items()},
        "ae_beats_pca": {q: s.ae_error < s.pca_error for q, s in summaries.items()},
        "best_epoch": {q: s.best_epoch for q, s in summaries.items()},
        "clusters": {q: int(s.prototypes.shape[0]) for q, s in summaries.items()},
        "maps_per_head": {q: len(samples[q].head) // heads for q in QUERY_TYPES},
        "map_shape": {q: list(s.prototypes.shape[1:]) for q, s in summaries.items()},
        "aligned_patch_queries": params.align_patch_queries,
        "split_sizes": {q: [int((s.split == i).sum()) for i in range(3)] for q, s in summaries.items()},
        "map_scale": "typical maps: probabilities over patch keys (sum 1); the autoencoders, their errors "
        "and the prototypes use each map divided by its max (peak 1)",
        "embedding_method": "PCA of the autoencoder latents to 2D",
        "images": len(source),
        "layers": lm.num_layers,
        "heads": lm.num_heads,
    }
