"""The attention-profile reduction fused into one Triton kernel: rings from queries and keys.

`vitscope.vit.analysis.rings.reduce_attention` reduces a layer's probabilities (B, H, T, T) after
the attention function has written them out. On the GPU that tensor is the cost: it is
written by QK^T, rewritten by the softmax and read back twice, for every layer, while the
fused SDPA kernel the model otherwise runs never writes it at all. This kernel takes the
query and key (B, H, T, D) instead and never writes a probability either. One program owns
a block of 16 query rows of a group of 16 (image, head) pairs. It computes their scores with
batched `tl.dot` in two passes over the key blocks (the row maxima and normalisers first, as
flash attention does online; then the probabilities, recomputed) and folds them straight into

- the column sums: each (query, key) pair has one column of the geometry's pair-to-column map
  (patch ring, CLS centre ring, prefix key, or none). Every pair of the group shares it, so
  binning a key block is one tensor-core product, probabilities (16 pairs, rows x keys) @
  one-hot (rows x keys, columns). Two earlier versions binned with masked sums on the CUDA
  cores, one column at a time, and spent 5-7x the time of the model's own layer doing so;
- each patch query's mean pixel distance to the patch keys (distance-weighted mass over
  patch mass, per row) summed over rows.

Each program writes the R + Rc + 2 partial sums of its rows (no atomics: deterministic), so
the layer's own output can come from the fused SDPA kernel, untouched. The result is the
same `AttentionStats` as `reduce_attention`: the probabilities are computed in float32 from
the inputs' dtype and binned in float16 (in float32 for float32 inputs), about as exact as
the materialised path's half-precision softmax.

Triton runs on CUDA; with `TRITON_INTERPRET=1` set before the kernel is first used, it runs on CPU
tensors through Triton's interpreter (how the tests check it here). `available` says which.
"""

from __future__ import annotations

import importlib.util
import math
import os
from typing import Any

import torch

from vitscope.vit.analysis.rings import AttentionStats, RingGeometry

HAS_TRITON = importlib.util.find_spec("triton") is not None


def interpreted() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (`TRITON_INTERPRET=1`)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def available(device: torch.device) -> bool:
    """Whether the fused kernel can run on tensors on `device` (CUDA, or any device under the interpreter)."""
    return HAS_TRITON and (device.type == "cuda" or interpreted())


def reduce_scores(
    query: torch.Tensor, key: torch.Tensor, scaling: float, geo: RingGeometry
) -> AttentionStats:
    """Reduce softmax(scaling * query key^T) of one layer to per-image statistics without materialising it.

    `query`, `key`: (B, H, T, D) in any strides and dtype (float32 scores use exact float32
    products). Returns float32 `AttentionStats` on the inputs' device, equal to
    `reduce_attention(softmax(...), geo)` up to rounding. Each program writes its own partial
    sums (no atomics), so the result is deterministic.
    """
    batch, heads, tokens, dim = query.shape
    cols = geo.rings + geo.rings_cls
    pairs = batch * heads
    partial = torch.empty(pairs, math.ceil(tokens / BLOCK_Q), _pow2(cols + 2), device=query.device)
    _kernel()[(partial.shape[1], math.ceil(pairs / GROUP))](
        query,
        key,
        geo.pair_column,
        geo.pair_distance,
        geo.patch_query,
        partial,
        *query.stride(),
        *key.stride(),
        pairs,
        heads,
        tokens,
        dim,
        scaling * math.log2(math.e),
        PATCH_RINGS=geo.rings,
        SLOTS=_pow2(cols + 1),
        OUT_SLOTS=partial.shape[2],
        DIST_SLOT=cols + 1,
        BLOCK_D=_pow2(max(dim, 16)),
        BLOCK_Q=BLOCK_Q,
        GROUP=GROUP,
        IEEE=query.dtype == torch.float32,
    )
    out = partial.sum(1)
    sums = out[:, : cols + 1] / geo.divisors
    ring_patch, ring_cls, sink = sums.view(batch, heads, -1).split([geo.rings, geo.rings_cls, 1], -1)
    distance_px = (out[:, cols + 1] / geo.layout.n_patches).view(batch, heads)
    return AttentionStats(ring_patch, ring_cls, distance_px, sink[..., 0])


BLOCK_Q = 16
"""Query rows per program (the least `tl.dot` takes; the key block and warps are autotuned)."""
GROUP = 16
"""(image, head) pairs per program: the rows of the binning product on the tensor cores."""


def _pow2(n: int) -> int:
    """The least power of two >= n (Triton's block shapes)."""
    return 1 << (n - 1).bit_length()


def _kernel() -> Any:
    """The jitted kernel, imported on first use so that importing this module never needs Triton."""
    from vitscope.vit.analysis.ring_kernel import ring_kernel

    return ring_kernel
