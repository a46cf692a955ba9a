"""Chebyshev rings on the patch grid and the per-layer attention reductions built on them.

Li et al. (TVCG 2023) measure a head's "attention strength across n-hop neighbours": for a
query patch p and key patch q on the h x w grid, d(p, q) = max(|r_p - r_q|, |c_p - c_q|)
(rings 0 .. max(h, w) - 1, ring 0 being the query patch itself), and

    S(n) = mean over the (p, q) pairs with d(p, q) = n of A[p, q],

the mean attention weight a patch query gives a patch key n hops away (CLS and other prefix
tokens excluded, weights not renormalised, so a uniform head has S(n) = 1/T at every ring).

The CLS query has no grid position, so its rings are measured from the grid centre instead:
d_c(q) = floor(max(|2 r_q - (h - 1)|, |2 c_q - (w - 1)|) / 2), which puts the central patch
(odd sides) or the central 2 x 2 block (even sides) in ring 0 and gives ceil(max(h, w) / 2)
rings. S_cls(n) = mean over the patch keys q with d_c(q) = n of A[cls, q], so central versus
peripheral focus of the CLS token reads off the same kind of bar chart.

Ring sums for patch queries, ring sums for the CLS query and the prefix ("sink") mass are one
GEMM of the flattened probabilities (B*H, T*T) against a precomputed 0/1 matrix (T*T, R+Rc+1);
the per-query distance needs one batched product more. Both read the probabilities once, in
their own dtype, so the reduction costs about two passes over each layer's attention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vitscope.vit.models.layout import TokenLayout


def _grid_coords(grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column (P,) of each patch in row-major order."""
    rows, cols = grid
    idx = torch.arange(rows * cols)
    return idx // cols, idx % cols


def patch_rings(grid: tuple[int, int]) -> torch.Tensor:
    """Chebyshev hop distance d(p, q) between every pair of patches: long (P, P)."""
    r, c = _grid_coords(grid)
    return torch.maximum((r[:, None] - r[None]).abs(), (c[:, None] - c[None]).abs())


def centre_rings(grid: tuple[int, int]) -> torch.Tensor:
    """Chebyshev ring of each patch around the grid centre (see the module doc): long (P,)."""
    r, c = _grid_coords(grid)
    # doubled coordinates keep the centre of an even side on an integer
    return torch.maximum((2 * r - (grid[0] - 1)).abs(), (2 * c - (grid[1] - 1)).abs()) // 2


def ring_count(grid: tuple[int, int]) -> tuple[int, int]:
    """Number of rings (patch queries, CLS query): (max(h, w), ceil(max(h, w) / 2))."""
    side = max(grid)
    return side, (side + 1) // 2


def ring_entropy(profile: torch.Tensor) -> torch.Tensor:
    """Entropy -sum s ln s of a ring profile normalised to sum 1 over its last axis: shape (...,).

    A profile with no mass at all (a head that only attends to prefix tokens) gets entropy 0.
    """
    total = profile.sum(-1, keepdim=True)
    s = profile / total.clamp_min(torch.finfo(profile.dtype).tiny)
    return -torch.special.xlogy(s, s).sum(-1)


@dataclass(frozen=True)
class RingGeometry:
    """Precomputed, on-device matrices that reduce the attention of one token layout in two products.

    `pair_weights` (T*T, R + Rc + 1) maps a flattened (query, key) token pair to its columns: the
    ring of a patch-patch pair, the centre ring of a (CLS, patch) pair, and "key is a prefix
    token" (entries 0/1, exact in bfloat16); `divisors` (R + Rc + 1,) turns the column sums into
    means (pairs per ring, keys per centre ring, T queries). `key_weights` (P, T, 2) holds, for
    each patch query, the pixel distance to every key and whether the key is a patch (0 for
    prefix keys), so one batched product gives distance-weighted and plain patch mass per query.

    The same geometry for the fused kernel (`vitscope.vit.analysis.fused_rings`), which reads it per
    pair instead: `pair_column` (T, T) int32, the one column of `pair_weights` a pair adds to
    (-1 for none); `pair_distance` (T, T) float32, patch query to patch key pixel distance (0
    elsewhere); `patch_query` (T,) int32, 1 for patch tokens.
    """

    layout: TokenLayout
    pair_weights: torch.Tensor
    divisors: torch.Tensor
    key_weights: torch.Tensor
    pair_column: torch.Tensor
    pair_distance: torch.Tensor
    patch_query: torch.Tensor

    @classmethod
    def build(
        cls, layout: TokenLayout, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> RingGeometry:
        """Return the geometry of `layout` on `device`, weights in the attention's `dtype` (0/1 and
        pixel distances; divisors stay float32), so no layer pays for a cast."""
        rings, rings_cls = ring_count(layout.grid)
        tokens = torch.zeros(layout.n_tokens, layout.n_tokens, rings + rings_cls + 1)
        patch_block = layout.patches(layout.patches(tokens, 0), 1)
        patch_block[..., :rings] = torch.nn.functional.one_hot(patch_rings(layout.grid), rings).float()
        cls_row = layout.patches(tokens[layout.cls_index], 0)
        cls_row[:, rings:-1] = torch.nn.functional.one_hot(centre_rings(layout.grid), rings_cls).float()
        tokens[:, : layout.n_prefix, -1] = 1
        weights = tokens.flatten(0, 1)
        divisors = weights.sum(0)
        divisors[-1] = layout.n_tokens  # the prefix column is averaged over every query
        # every pair adds to at most one column, so the 0/1 rows are one-hot or empty
        column = torch.where(weights.sum(-1) > 0, weights.argmax(-1), -1).view(layout.n_tokens, -1)
        key_weights = _key_weights(layout)
        distance = torch.zeros(layout.n_tokens, layout.n_tokens)
        layout.patches(distance, 0).copy_(key_weights[..., 0])
        patch_query = torch.zeros(layout.n_tokens, dtype=torch.int32)
        layout.patches(patch_query, 0).fill_(1)
        return cls(
            layout,
            weights.to(device, dtype),
            divisors.to(device),
            key_weights.to(device, dtype),
            column.to(device, torch.int32),
            distance.to(device),
            patch_query.to(device),
        )

    @property
    def rings(self) -> int:
        """Number of rings for patch queries, R."""
        return max(self.layout.grid)

    @property
    def rings_cls(self) -> int:
        """Number of rings around the grid centre for the CLS query, Rc."""
        return ring_count(self.layout.grid)[1]

    def ring_sizes(self) -> torch.Tensor:
        """Mean number of patch keys at each hop distance from a patch query: (R,)."""
        return self.divisors[: self.rings] / self.layout.n_patches

    def max_entropy(self) -> tuple[float, float]:
        """Largest possible ring entropy (patch queries, CLS query): (ln R, ln Rc)."""
        return math.log(self.rings), math.log(self.rings_cls)


def _key_weights(layout: TokenLayout) -> torch.Tensor:
    """(P, T, 2): pixel distance from each patch query to each key, and 1 for patch keys (prefix keys 0)."""
    centres = layout.patch_centers()
    weights = torch.zeros(layout.n_patches, layout.n_tokens, 2)
    layout.patches(weights, 1)[..., 0] = torch.cdist(centres, centres)
    layout.patches(weights, 1)[..., 1] = 1
    return weights


@dataclass
class AttentionStats:
    """Per-image, per-head reductions of one layer's attention.

    `ring_patch` (B, H, R) and `ring_cls` (B, H, Rc) mean strength per ring; `distance_px` (B, H)
    mean attention distance of patch queries over patch keys; `sink_share` (B, H) mean attention
    mass all queries give to prefix tokens.
    """

    ring_patch: torch.Tensor
    ring_cls: torch.Tensor
    distance_px: torch.Tensor
    sink_share: torch.Tensor


def reduce_attention(probs: torch.Tensor, geo: RingGeometry) -> AttentionStats:
    """Reduce attention probabilities (B, H, T, T) to per-image statistics (float32, on `probs`' device).

    Two products read the probabilities in their own dtype (that of `geo`'s weights): a GEMM of
    the flattened (B*H, T*T) matrix against `pair_weights`, and a batched product of each patch
    query's row against `key_weights` (on CUDA the transposed rows are read in place).
    """
    batch, heads, tokens = probs.shape[:3]
    flat = probs.reshape(batch * heads, tokens * tokens)
    sums = (flat @ geo.pair_weights).float() / geo.divisors
    ring_patch, ring_cls, sink = sums.view(batch, heads, -1).split([geo.rings, geo.rings_cls, 1], -1)
    rows = geo.layout.patches(probs.reshape(batch * heads, tokens, tokens), 1).transpose(0, 1)  # (P, B*H, T)
    weighted, mass = torch.bmm(rows, geo.key_weights).float().unbind(-1)
    # distance is renormalised over patch keys so prefix sinks do not pull it towards 0
    distance = (weighted / mass.clamp_min(torch.finfo(mass.dtype).tiny)).mean(0).view(batch, heads)
    return AttentionStats(ring_patch, ring_cls, distance, sink[..., 0])
