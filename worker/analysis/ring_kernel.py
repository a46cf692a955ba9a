"""The Triton source of the fused ring reduction; see `worker.analysis.fused_rings` for what it computes.

Imported only when the kernel runs, so that nothing else needs Triton installed.
"""

# mypy: ignore-errors

import triton
import triton.language as tl

from worker.analysis.fused_rings import interpreted

CONFIGS = [
    triton.Config({"BLOCK_K": bk}, num_warps=w) for bk, w in ([64, 8], [32, 4], [64, 4], [128, 8], [32, 8])
]
"""Key block and warps, autotuned per (tokens, head dim, rings); one config under the interpreter."""


@triton.jit
def scores(q, kt, scale_log2, IEEE: tl.constexpr):
    """Scaled scores (log2 units) of a query block against a transposed key block, float32."""
    if IEEE:  # noqa: SIM108 - a constexpr branch: Triton compiles only the taken side
        s = tl.dot(q, kt, input_precision="ieee")
    else:
        s = tl.dot(q, kt)
    return s * scale_log2


@triton.autotune(
    configs=CONFIGS[:1] if interpreted() else CONFIGS, key=["tokens", "dim", "RINGS", "CLS_RINGS"]
)
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
    heads,
    tokens,
    dim,
    scale_log2,
    RINGS: tl.constexpr,
    CLS_RINGS: tl.constexpr,
    RING_SLOTS: tl.constexpr,
    CLS_SLOTS: tl.constexpr,
    OUT_SLOTS: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_Q: tl.constexpr,
    IEEE: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """Partial ring, CLS-ring, sink and distance sums of BLOCK_Q query rows of one (image, head).

    Everything accumulates elementwise in registers across key blocks (the ring sums in a
    (RING_SLOTS, BLOCK_Q, BLOCK_K) one-hot accumulator), and is reduced across threads once,
    at the end; only the first query block, which holds the CLS row, reduces its row per block.
    """
    q_block, bh = tl.program_id(0), tl.program_id(1)
    b, h = bh // heads, bh % heads
    rows = q_block * BLOCK_Q + tl.arange(0, BLOCK_Q)
    d = tl.arange(0, BLOCK_D)
    row_ok = rows < tokens
    q = tl.load(
        q_ptr + b * sqb + h * sqh + rows[:, None] * sqt + d[None, :] * sqd,
        mask=row_ok[:, None] & (d[None, :] < dim),
        other=0.0,
    )
    k_base = k_ptr + b * skb + h * skh
    # pass 1: row maxima and normalisers of 2^(scaled scores), online over key blocks
    m = tl.full([BLOCK_Q], float("-inf"), tl.float32)
    norm = tl.zeros([BLOCK_Q], tl.float32)
    for start in range(0, tokens, BLOCK_K):
        keys = start + tl.arange(0, BLOCK_K)
        kt = tl.load(
            k_base + keys[None, :] * skt + d[:, None] * skd,
            mask=(keys[None, :] < tokens) & (d[:, None] < dim),
            other=0.0,
        )
        s = tl.where(keys[None, :] < tokens, scores(q, kt, scale_log2, IEEE), float("-inf"))
        m_new = tl.maximum(m, tl.max(s, 1))
        norm = norm * tl.exp2(m - m_new) + tl.sum(tl.exp2(s - m_new[:, None]), 1)
        m = m_new
    inv = 1.0 / tl.where(row_ok, norm, 1.0)
    m = tl.where(row_ok, m, 0.0)
    # pass 2: probabilities, accumulated per (ring, row, key slot) and per (row, key slot)
    ring_ids = tl.arange(0, RING_SLOTS)
    cls_ids = tl.arange(0, CLS_SLOTS)
    ring_acc = tl.zeros([RING_SLOTS, BLOCK_Q, BLOCK_K], tl.float32)
    weighted = tl.zeros([BLOCK_Q, BLOCK_K], tl.float32)
    mass = tl.zeros([BLOCK_Q, BLOCK_K], tl.float32)
    sink = tl.zeros([BLOCK_Q, BLOCK_K], tl.float32)
    cls_acc = tl.zeros([CLS_SLOTS], tl.float32)
    for start in range(0, tokens, BLOCK_K):
        keys = start + tl.arange(0, BLOCK_K)
        pair_ok = row_ok[:, None] & (keys[None, :] < tokens)
        kt = tl.load(
            k_base + keys[None, :] * skt + d[:, None] * skd,
            mask=(keys[None, :] < tokens) & (d[:, None] < dim),
            other=0.0,
        )
        s = scores(q, kt, scale_log2, IEEE)
        p = tl.where(pair_ok, tl.exp2(s - m[:, None]) * inv[:, None], 0.0)
        pair = rows[:, None] * tokens + keys[None, :]
        col = tl.load(col_ptr + pair, mask=pair_ok, other=-1)
        weighted += p * tl.load(dist_ptr + pair, mask=pair_ok, other=0.0)
        ring = tl.where(col < RINGS, col, -1)  # patch query to patch key pairs; -1 for the rest
        mass += tl.where(ring >= 0, p, 0.0)
        sink += tl.where(col == RINGS + CLS_RINGS, p, 0.0)
        ring_acc += tl.where(ring[None, :, :] == ring_ids[:, None, None], p[None, :, :], 0.0)
        if q_block == 0:  # the CLS query (row 0) and its rings around the grid centre
            cls_p = tl.sum(tl.where(rows[:, None] == 0, p, 0.0), 0)
            cls_col = tl.load(col_ptr + keys, mask=keys < tokens, other=-1) - RINGS
            cls_acc += tl.sum(tl.where(cls_col[None, :] == cls_ids[:, None], cls_p[None, :], 0.0), 1)
    is_patch = tl.load(pq_ptr + rows, mask=row_ok, other=0) != 0
    patch_mass = tl.sum(mass, 1)
    ratio = tl.where(is_patch, tl.sum(weighted, 1) / tl.maximum(patch_mass, 1e-30), 0.0)
    base = out_ptr + (bh * tl.num_programs(0) + q_block) * OUT_SLOTS
    tl.store(base + ring_ids, tl.sum(tl.sum(ring_acc, 2), 1), mask=ring_ids < RINGS)
    tl.store(base + RINGS + cls_ids, cls_acc, mask=cls_ids < CLS_RINGS)
    tl.store(base + RINGS + CLS_RINGS, tl.sum(tl.sum(sink, 1), 0))
    tl.store(base + RINGS + CLS_RINGS + 1, tl.sum(ratio, 0))
