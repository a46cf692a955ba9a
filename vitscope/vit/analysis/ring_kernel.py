"""The Triton source of the fused ring reduction; see `vitscope.vit.analysis.fused_rings` for what it computes.

Imported only when the kernel runs, so that nothing else needs Triton installed.
"""

# mypy: ignore-errors

import os

import triton
import triton.language as tl

from vitscope.vit.analysis.fused_rings import interpreted

CONFIGS = [
    triton.Config({"BLOCK_K": bk}, num_warps=w) for bk, w in ([32, 4], [32, 8], [64, 8], [16, 4], [64, 4])
]
"""Key block and warps, autotuned per (tokens, head dim, slots); one config under the interpreter."""

FIXED = [triton.Config({"BLOCK_K": 16}, num_warps=4)]
"""With `VITSCOPE_FIXED_AUTOTUNE=1` (the tests: every config of every shape costs a compile and a
timing) the one config; the smallest key block, whose shared memory fits every shape and dtype."""


def _configs() -> list:
    if interpreted():
        return CONFIGS[:1]
    return FIXED if os.environ.get("VITSCOPE_FIXED_AUTOTUNE") == "1" else CONFIGS


@triton.jit
def scores(q, kt, scale_log2, IEEE: tl.constexpr):
    """Scaled scores (log2 units) of query blocks against transposed key blocks (batched), float32."""
    if IEEE:  # noqa: SIM108 - a constexpr branch: Triton compiles only the taken side
        s = tl.dot(q, kt, input_precision="ieee")
    else:
        s = tl.dot(q, kt)
    return s * scale_log2


@triton.jit
def binned(p, onehot, IEEE: tl.constexpr):
    """Column sums p (G, pairs) @ onehot (pairs, slots) on the tensor cores: float16 operands (0/1
    exact, probabilities to 2^-11 relative), float32 accumulation; exact float32 under IEEE."""
    if IEEE:
        out = tl.dot(p, onehot.to(tl.float32), input_precision="ieee")
    else:
        out = tl.dot(p.to(tl.float16), onehot.to(tl.float16))
    return out


@triton.autotune(configs=_configs(), key=["tokens", "dim", "SLOTS"])
@triton.jit
def ring_kernel(
    q_ptr,
    k_ptr,
    col_ptr,
    dist_ptr,
    pq_ptr,
    out_ptr,
    sqb,
    sqh,
    sqt,
    sqd,
    skb,
    skh,
    skt,
    skd,
    n_bh,
    heads,
    tokens,
    dim,
    scale_log2,
    PATCH_RINGS: tl.constexpr,
    SLOTS: tl.constexpr,
    OUT_SLOTS: tl.constexpr,
    DIST_SLOT: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_Q: tl.constexpr,
    GROUP: tl.constexpr,
    IEEE: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """Partial column and distance sums of BLOCK_Q query rows for GROUP (image, head) pairs.

    The group shares every (query, key) pair's column, so the binning of a key block is one
    tensor-core product: probabilities (GROUP, BLOCK_Q * BLOCK_K) @ one-hot (BLOCK_Q * BLOCK_K,
    SLOTS), the one-hot built once for the whole group.
    """
    q_block, group = tl.program_id(0), tl.program_id(1)
    bh = group * GROUP + tl.arange(0, GROUP)
    bh_ok = bh < n_bh
    bh64 = bh.to(tl.int64)
    q_base = (bh64 // heads) * sqb + (bh64 % heads) * sqh
    k_base = (bh64 // heads) * skb + (bh64 % heads) * skh
    rows = q_block * BLOCK_Q + tl.arange(0, BLOCK_Q)
    row_ok = rows < tokens
    d = tl.arange(0, BLOCK_D)
    q = tl.load(
        q_ptr + q_base[:, None, None] + rows[None, :, None] * sqt + d[None, None, :] * sqd,
        mask=bh_ok[:, None, None] & row_ok[None, :, None] & (d < dim)[None, None, :],
        other=0.0,
    )
    # pass 1: row maxima and normalisers of 2^(scaled scores), online over key blocks
    m = tl.full([GROUP, BLOCK_Q], float("-inf"), tl.float32)
    norm = tl.zeros([GROUP, BLOCK_Q], tl.float32)
    for start in range(0, tokens, BLOCK_K):
        keys = start + tl.arange(0, BLOCK_K)
        kt = tl.load(
            k_ptr + k_base[:, None, None] + d[None, :, None] * skd + keys[None, None, :] * skt,
            mask=bh_ok[:, None, None] & (d < dim)[None, :, None] & (keys < tokens)[None, None, :],
            other=0.0,
        )
        s = tl.where((keys < tokens)[None, None, :], scores(q, kt, scale_log2, IEEE), float("-inf"))
        m_new = tl.maximum(m, tl.max(s, 2))
        norm = norm * tl.exp2(m - m_new) + tl.sum(tl.exp2(s - m_new[:, :, None]), 2)
        m = m_new
    ok = bh_ok[:, None] & row_ok[None, :]
    inv = 1.0 / tl.where(ok, norm, 1.0)
    m = tl.where(ok, m, 0.0)
    # pass 2: probabilities binned by column on the tensor cores; per-row distance and patch mass
    slots = tl.arange(0, SLOTS)
    acc = tl.zeros([GROUP, SLOTS], tl.float32)
    weighted = tl.zeros([GROUP, BLOCK_Q], tl.float32)
    mass = tl.zeros([GROUP, BLOCK_Q], tl.float32)
    for start in range(0, tokens, BLOCK_K):
        keys = start + tl.arange(0, BLOCK_K)
        pair_ok = row_ok[:, None] & (keys < tokens)[None, :]
        kt = tl.load(
            k_ptr + k_base[:, None, None] + d[None, :, None] * skd + keys[None, None, :] * skt,
            mask=bh_ok[:, None, None] & (d < dim)[None, :, None] & (keys < tokens)[None, None, :],
            other=0.0,
        )
        s = scores(q, kt, scale_log2, IEEE)
        p = tl.where(pair_ok[None, :, :], tl.exp2(s - m[:, :, None]) * inv[:, :, None], 0.0)
        pair = rows[:, None] * tokens + keys[None, :]
        col = tl.load(col_ptr + pair, mask=pair_ok, other=-1)
        weighted += tl.sum(p * tl.load(dist_ptr + pair, mask=pair_ok, other=0.0)[None, :, :], 2)
        mass += tl.sum(tl.where(((col >= 0) & (col < PATCH_RINGS))[None, :, :], p, 0.0), 2)
        onehot = tl.reshape(col, [BLOCK_Q * BLOCK_K])[:, None] == slots[None, :]
        acc += binned(tl.reshape(p, [GROUP, BLOCK_Q * BLOCK_K]), onehot, IEEE)
    is_patch = tl.load(pq_ptr + rows, mask=row_ok, other=0) != 0
    ratio = tl.where(is_patch[None, :], weighted / tl.maximum(mass, 1e-30), 0.0)
    base = out_ptr + (bh64 * tl.num_programs(0) + q_block) * OUT_SLOTS
    tl.store(base[:, None] + slots[None, :], acc, mask=bh_ok[:, None] & (slots < DIST_SLOT)[None, :])
    tl.store(base + DIST_SLOT, tl.sum(ratio, 1), mask=bh_ok)
