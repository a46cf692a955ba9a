"""From sampled attention maps to the pattern summary: autoencoder, 2D map, clusters.

`summarise_maps` is the core of the `attention-patterns` analysis for one query type, on
plain tensors (a notebook or a test can call it with synthetic maps):

- maps are split once, with a seeded permutation, into train / validation / held-out;
- PCA and the autoencoder are fitted on train (see `vitscope.vit.analysis.autoencoder`); both are
  scored by MSE on the held-out maps, in the network's scale (peak 1 per map);
- the 2D embedding is PCA to two dimensions of all latents: linear, so fast, deterministic
  (an SVD with fixed signs), and distances along it mean the same everywhere, which the
  density plot and the per-head mean need; t-SNE/UMAP would be neither fast nor stable;
- k-means (k-means++ seeding, a few seeded restarts) on the latents gives clusters; each
  cluster's prototype is its decoded centroid and its typical maps the members nearest it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vitscope.contracts.errors import UserError
from vitscope.vit.analysis.autoencoder import (
    EpochCallback,
    TrainedAutoencoder,
    mse,
    small_ops,
    to_network,
    train_autoencoder,
)

TEST_FRACTION = 0.15
VAL_FRACTION = 0.10


@dataclass(frozen=True)
class TrainingConfig:
    """Autoencoder and clustering settings (a subset of `AttentionPatternsParams`)."""

    latent_dim: int = 16
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 3e-3
    clusters: int = 8
    typical: int = 4
    seed: int = 0
    width: int = 16


@dataclass
class PatternSummary:
    """The summary of one query type's M maps from `heads` heads, k clusters, maps of shape (h, w).

    `embedding` (M, 2), `cluster` (M,), `split` (M,) 0 train / 1 val / 2 held-out,
    `head_points` (heads, 2) mean embedding of each head's maps (NaN for a head without maps),
    `head_mix` (heads, k) fraction of each head's maps in each cluster, `prototypes` (k, h, w)
    decoded centroids in the network's scale (a map's peak is 1), clipped at 0,
    `typical` (k, t, h, w) the real maps nearest each centroid (probabilities; zeros where a
    cluster has fewer than t),
    `typical_index` (k, t) their sample indices (-1 = none), `curve` (E+1, 2) train and
    validation MSE per epoch, `ae_error` / `pca_error` held-out MSE, `best_epoch` the kept epoch.
    """

    embedding: torch.Tensor
    cluster: torch.Tensor
    split: torch.Tensor
    head_points: torch.Tensor
    head_mix: torch.Tensor
    prototypes: torch.Tensor
    typical: torch.Tensor
    typical_index: torch.Tensor
    curve: torch.Tensor
    ae_error: float
    pca_error: float
    best_epoch: int


def summarise_maps(
    maps: torch.Tensor,
    head: torch.Tensor,
    heads: int,
    config: TrainingConfig,
    on_epoch: EpochCallback | None = None,
) -> PatternSummary:
    """Train, score and summarise: maps (M, h, w) probabilities, head (M,) in [0, heads).

    Training runs on the maps' device; the small summaries run on the CPU. Returns a
    `PatternSummary` (arrays on the CPU).
    """
    with small_ops(maps.device):
        return _summarise(maps, head, heads, config, on_epoch)


def _summarise(
    maps: torch.Tensor,
    head: torch.Tensor,
    heads: int,
    config: TrainingConfig,
    on_epoch: EpochCallback | None,
) -> PatternSummary:
    x = to_network(maps)
    split = split_labels(len(x), config.seed)
    ae, ae_error, pca_error = _fit_and_score(x, split, config, on_epoch)
    with torch.no_grad():
        latents = torch.cat([ae.model.encode(chunk) for chunk in x.split(4096)]).cpu().double()
        centroids, cluster = kmeans(latents, min(config.clusters, len(latents)), config.seed)
        prototypes = ae.model.decode(centroids.float().to(x.device)).clamp_min(0).cpu()
    embedding = embed_2d(latents)
    typical_index = nearest_members(latents, centroids, cluster, config.typical)
    return PatternSummary(
        embedding=embedding.float(),
        cluster=cluster,
        split=split,
        head_points=group_mean(embedding, head.cpu(), heads).float(),
        head_mix=cluster_mix(cluster, head.cpu(), heads, len(centroids)),
        prototypes=prototypes,
        typical=gather_maps(maps.cpu(), typical_index),
        typical_index=typical_index,
        curve=ae.curve,
        ae_error=ae_error,
        pca_error=pca_error,
        best_epoch=ae.best_epoch,
    )


def _fit_and_score(
    x: torch.Tensor, split: torch.Tensor, config: TrainingConfig, on_epoch: EpochCallback | None
) -> tuple[TrainedAutoencoder, float, float]:
    """Train on split 0, select on split 1; return (model, autoencoder MSE, PCA MSE) on split 2."""
    train, val, held_out = (x[(split == s).to(x.device)] for s in range(3))
    ae = train_autoencoder(
        train,
        val,
        config.latent_dim,
        config.epochs,
        config.batch_size,
        config.learning_rate,
        config.seed,
        width=config.width,
        on_epoch=on_epoch,
    )
    pca_error = mse(lambda v: ae.pca.decode(ae.pca.encode(v), tuple(v.shape[1:])), held_out)
    return ae, mse(ae.model, held_out), pca_error


def split_labels(n: int, seed: int) -> torch.Tensor:
    """A seeded split of n samples: (n,) int8, 0 train, 1 validation, 2 held-out (each non-empty for n >= 3)."""
    n_test = max(1, round(n * TEST_FRACTION))
    n_val = max(1, round(n * VAL_FRACTION))
    if n - n_test - n_val < 1:
        raise UserError(f"{n} sampled maps are too few to train and test an autoencoder: give more images")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))
    labels = torch.zeros(n, dtype=torch.int8)
    labels[perm[:n_test]] = 2
    labels[perm[n_test : n_test + n_val]] = 1
    return labels


def kmeans(
    x: torch.Tensor, k: int, seed: int, restarts: int = 4, iters: int = 100
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded k-means on x (N, d): returns (centroids (k, d), labels (N,)), the best of `restarts` by inertia."""
    gen = torch.Generator().manual_seed(seed)
    best: tuple[float, torch.Tensor, torch.Tensor] | None = None
    for _ in range(restarts):
        centroids = _kmeans_pp(x, k, gen)
        for _ in range(iters):
            labels = torch.cdist(x, centroids).argmin(1)
            updated = _centroids(x, labels, centroids)
            if torch.equal(updated, centroids):
                break
            centroids = updated
        labels = torch.cdist(x, centroids).argmin(1)
        inertia = float(((x - centroids[labels]) ** 2).sum())
        if best is None or inertia < best[0]:
            best = (inertia, centroids, labels)
    assert best is not None
    return best[1], best[2]


def _kmeans_pp(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: each next centre drawn with probability proportional to squared distance."""
    chosen = [int(torch.randint(len(x), (1,), generator=gen))]
    dist = ((x - x[chosen[0]]) ** 2).sum(1)
    for _ in range(1, k):
        weights = dist if float(dist.sum()) > 0 else torch.ones_like(dist)
        chosen.append(int(torch.multinomial(weights, 1, generator=gen)))
        dist = torch.minimum(dist, ((x - x[chosen[-1]]) ** 2).sum(1))
    return x[chosen].clone()


def _centroids(x: torch.Tensor, labels: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """Member means (k, d); an empty cluster keeps its previous centre."""
    onehot = torch.nn.functional.one_hot(labels, len(previous)).to(x.dtype)  # (N, k)
    counts = onehot.sum(0)
    means = (onehot.T @ x) / counts.clamp_min(1)[:, None]
    return torch.where(counts[:, None] > 0, means, previous)


def embed_2d(latents: torch.Tensor) -> torch.Tensor:
    """PCA of latents (N, d) to (N, 2), each axis signed so its largest loading is positive."""
    centred = latents - latents.mean(0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    axes = vh[:2]
    sign = axes.gather(1, axes.abs().argmax(1, keepdim=True)).sign()
    coords = centred @ (axes * torch.where(sign == 0, 1.0, sign)).T
    if coords.shape[1] < 2:  # a 1-D latent: the second axis is flat
        coords = torch.nn.functional.pad(coords, (0, 2 - coords.shape[1]))
    return coords


def group_mean(values: torch.Tensor, group: torch.Tensor, groups: int) -> torch.Tensor:
    """Mean of values (N, d) per group (N,) in [0, groups): (groups, d), NaN for an empty group."""
    onehot = torch.nn.functional.one_hot(group, groups).to(values.dtype)
    counts = onehot.sum(0)[:, None]
    return (onehot.T @ values) / torch.where(counts > 0, counts, torch.nan)


def cluster_mix(cluster: torch.Tensor, group: torch.Tensor, groups: int, k: int) -> torch.Tensor:
    """Fraction of each group's samples in each cluster: (groups, k), rows sum to 1 (0 for an empty group)."""
    counts = torch.zeros(groups, k, dtype=torch.float64)
    counts.index_put_((group, cluster), torch.ones(len(group), dtype=torch.float64), accumulate=True)
    return (counts / counts.sum(1, keepdim=True).clamp_min(1)).float()


def nearest_members(x: torch.Tensor, centroids: torch.Tensor, labels: torch.Tensor, t: int) -> torch.Tensor:
    """Indices (k, t) of each cluster's t members nearest its centroid, nearest first; -1 pads."""
    out = torch.full((len(centroids), t), -1, dtype=torch.long)
    dist = ((x - centroids[labels]) ** 2).sum(1)
    for c in range(len(centroids)):
        members = (labels == c).nonzero().squeeze(1)
        order = torch.sort(dist[members], stable=True).indices[:t]
        out[c, : len(order)] = members[order]
    return out


def gather_maps(maps: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """maps (M, h, w) at index (k, t) -> (k, t, h, w), zeros where the index is -1."""
    picked = maps[index.clamp_min(0)]
    return picked * (index >= 0)[..., None, None].to(maps.dtype)
