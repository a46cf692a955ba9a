"""Balanced, bounded-memory sampling of per-query attention maps from every head.

A per-query map is one row of a head's attention matrix restricted to the patch keys (prefix
keys dropped) and renormalised to sum 1: a distribution over the h x w patch grid. Two query
types are sampled separately: patch queries (every patch token's row) and the CLS query.

Every (layer, head, query type) keeps a bottom-k sketch: each candidate map gets an
independent uniform key from one seeded generator and the `capacity` smallest keys are kept.
That is a uniform sample without replacement (reservoir sampling), it merges batch by batch
with a top-k, and it only ever gathers the rows it keeps, so memory is
O(layers x heads x capacity x patches) whatever the dataset size. Every head of a model sees
the same number of candidates, so every head ends with exactly `min(capacity, candidates)`
maps: equal coverage by construction.

Keys are drawn on the CPU, so the same seed samples the same rows on any device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vitscope.vit.models.layout import TokenLayout

QUERY_TYPES = ("patch", "cls")


@dataclass
class MapSample:
    """Sampled maps of one query type, ordered by (layer, head).

    `maps` (M, P) probabilities over the P patch keys (each row sums to 1), `head` (M,)
    layer * heads + head, `image` (M,) dataset index, `query` (M,) query token index in the
    full sequence (prefix tokens first), `prefix_share` (M,) attention mass the query put on
    prefix keys before they were dropped.
    """

    maps: torch.Tensor
    head: torch.Tensor
    image: torch.Tensor
    query: torch.Tensor
    prefix_share: torch.Tensor


class _Reservoir:
    """Bottom-k sketch of candidate rows for all heads of one layer and one query type."""

    def __init__(self, heads: int, capacity: int, n_patches: int, device: torch.device) -> None:
        self.keys = torch.full((heads, capacity), float("inf"), dtype=torch.float64, device=device)
        self.maps = torch.zeros(heads, capacity, n_patches, device=device)
        self.meta = torch.zeros(heads, capacity, 2, dtype=torch.long, device=device)  # image, query
        self.share = torch.zeros(heads, capacity, device=device)

    def offer(self, keys: torch.Tensor, maps: torch.Tensor, meta: torch.Tensor, share: torch.Tensor) -> None:
        """Merge pre-selected candidates: keys (H, k), maps (H, k, P), meta (H, k, 2), share (H, k)."""
        all_keys = torch.cat([self.keys, keys], dim=1)
        kept = all_keys.topk(self.keys.shape[1], dim=1, largest=False, sorted=True).indices
        self.keys = all_keys.gather(1, kept)
        self.maps = _take(torch.cat([self.maps, maps], dim=1), kept)
        self.meta = _take(torch.cat([self.meta, meta], dim=1), kept)
        self.share = torch.cat([self.share, share], dim=1).gather(1, kept)

    def filled(self) -> int:
        """Number of slots holding a sample (the same for every head)."""
        return int(torch.isfinite(self.keys[0]).sum())


def _take(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (H, n, ...) indexed along dim 1 by idx (H, k) -> (H, k, ...)."""
    heads = torch.arange(x.shape[0], device=x.device)[:, None]
    return x[heads, idx]


class PatternSampler:
    """An attention sink (see `vitscope.vit.models.hooks.intervene`) that samples maps on the fly.

    Call `start_batch(indices)` before each forward pass with the batch's dataset indices;
    after the last batch `samples()` returns one `MapSample` per query type.
    """

    def __init__(
        self, layout: TokenLayout, layers: int, heads: int, capacity: int, seed: int, device: torch.device
    ) -> None:
        self.layout, self.layers, self.heads, self.capacity = layout, layers, heads, capacity
        self.generator = torch.Generator().manual_seed(seed)
        self.device = device
        self.store = {
            (q, layer): _Reservoir(heads, capacity, layout.n_patches, device)
            for q in QUERY_TYPES
            for layer in range(layers)
        }
        self.images = torch.zeros(0, dtype=torch.long)

    def start_batch(self, indices: torch.Tensor) -> None:
        """Set the dataset indices (B,) of the images in the next forward pass."""
        self.images = indices.to(self.device, torch.long)

    def __call__(self, layer: int, probs: torch.Tensor) -> None:
        """Sink: offer every patch-query row and the CLS row of probs (B, heads, T, T)."""
        batch = probs.shape[0]
        for q in QUERY_TYPES:
            per_image = self.layout.n_patches if q == "patch" else 1
            candidates = batch * per_image
            # keys for every candidate, drawn in a fixed order so the sample depends only on the seed
            keys = torch.rand(self.heads, candidates, generator=self.generator, dtype=torch.float64)
            keys = keys.to(self.device)
            k = min(self.capacity, candidates)
            pick = keys.topk(k, dim=1, largest=False, sorted=True).indices  # (H, k)
            b, row = pick // per_image, pick % per_image
            token = (
                row + self.layout.n_prefix if q == "patch" else torch.full_like(row, self.layout.cls_index)
            )
            maps, share = self._rows(probs, b, token)
            meta = torch.stack([self.images[b], token], dim=-1)
            self.store[q, layer].offer(keys.gather(1, pick), maps, meta, share)

    def _rows(
        self, probs: torch.Tensor, b: torch.Tensor, token: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows probs[b, h, token] as renormalised patch-key maps (H, k, P) and their prefix share (H, k)."""
        heads = torch.arange(self.heads, device=probs.device)[:, None]
        rows = probs[b, heads, token].float()  # (H, k, T)
        patch = self.layout.patches(rows, dim=-1)
        mass = patch.sum(-1)
        share = (rows.sum(-1) - mass).clamp_min(0.0)
        return patch / mass.clamp_min(torch.finfo(torch.float32).tiny)[..., None], share

    def samples(self) -> dict[str, MapSample]:
        """One `MapSample` per query type; every head contributes exactly the same number of maps."""
        out = {}
        for q in QUERY_TYPES:
            parts = [self.store[q, layer] for layer in range(self.layers)]
            n = parts[0].filled()
            head = torch.arange(self.layers * self.heads, device=self.device).repeat_interleave(n)
            meta = torch.cat([r.meta[:, :n].reshape(-1, 2) for r in parts])
            out[q] = MapSample(
                maps=torch.cat([r.maps[:, :n].reshape(-1, self.layout.n_patches) for r in parts]),
                head=head,
                image=meta[:, 0],
                query=meta[:, 1],
                prefix_share=torch.cat([r.share[:, :n].reshape(-1) for r in parts]),
            )
        return out


def align_to_query(maps: torch.Tensor, query: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """Re-centre patch-query maps on their query: (M, P) -> (M, 2h-1, 2w-1).

    Key (ky, kx) of the query at grid cell (qy, qx) lands at (ky - qy + h - 1, kx - qx + w - 1),
    so the query sits at the centre and a shift-equivariant pattern (self, local ring) becomes
    one map for all queries; cells no key reaches are 0.
    """
    h, w = layout.grid
    cell = query - layout.n_prefix
    qy, qx = cell // w, cell % w  # (M,)
    ky, kx = torch.arange(h, device=maps.device), torch.arange(w, device=maps.device)
    rows = (ky[None, :] - qy[:, None] + h - 1)[:, :, None]  # (M, h, 1)
    cols = (kx[None, :] - qx[:, None] + w - 1)[:, None, :]  # (M, 1, w)
    target = (rows * (2 * w - 1) + cols).reshape(len(maps), -1)  # (M, P), distinct per row
    canvas = maps.new_zeros(len(maps), (2 * h - 1) * (2 * w - 1))
    canvas.scatter_(1, target, maps)
    return canvas.view(len(maps), 2 * h - 1, 2 * w - 1)
