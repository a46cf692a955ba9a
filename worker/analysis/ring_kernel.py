"""The Triton source of the fused ring reduction; see `worker.analysis.fused_rings` for what it computes.

Imported only when the kernel runs, so that nothing else needs Triton installed.
"""

# mypy: ignore-errors

import triton
import triton.language as tl

from worker.analysis.fused_rings import interpreted

CONFIGS = [
    triton.Config({"BLOCK_K": bk}, num_warps=w) for bk, w in ([64, 4], [32, 4], [128, 4], [64, 8], [32, 2])
]
"""Key block and warps, autotuned per (tokens, head dim, columns); one config under the interpreter."""


@triton.jit
def scores(q, kt, scale_log2, IEEE: tl.constexpr):
    """Scaled scores (log2 units) of a query block against a transposed key block, float32."""
    if IEEE:  # noqa: SIM108 - a constexpr branch: Triton compiles only the taken side
        s = tl.dot(q, kt, input_precision="ieee")
    else:
        s = tl.dot(q, kt)
    return s * scale_log2


@triton.autotune(configs=CONFIGS[:1] if interpreted() else CONFIGS, key=["tokens", "dim", "N_COLS"])
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
    N_COLS: tl.constexpr,
    PATCH_COLS: tl.constexpr,
    SLOTS: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_Q: tl.constexpr,
    IEEE: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """Partial ring, sink and distance sums of BLOCK_Q query rows of one (image, head)."""
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
    # pass 2: probabilities, folded into the column sums and per-row distance, patch and sink mass
    slots = tl.arange(0, SLOTS)
    acc = tl.zeros([SLOTS], tl.float32)
    weighted = tl.zeros([BLOCK_Q], tl.float32)
    mass = tl.zeros([BLOCK_Q], tl.float32)
    sink = tl.zeros([BLOCK_Q], tl.float32)
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
        dist = tl.load(dist_ptr + pair, mask=pair_ok, other=0.0)
        weighted += tl.sum(p * dist, 1)
        mass += tl.sum(tl.where((col >= 0) & (col < PATCH_COLS), p, 0.0), 1)
        sink += tl.sum(tl.where(col == N_COLS, p, 0.0), 1)
        # a tile of nearby rows and keys spans a few rings only: loop over the ones present
        ring = tl.where((col >= 0) & (col < N_COLS), col, -1)
        low = tl.min(tl.where(ring >= 0, ring, N_COLS))
        for c in range(low, tl.max(ring) + 1):
            acc += tl.where(slots == c, tl.sum(tl.sum(tl.where(ring == c, p, 0.0), 1), 0), 0.0)
    is_patch = tl.load(pq_ptr + rows, mask=row_ok, other=0) != 0
    ratio = tl.where(is_patch, weighted / tl.maximum(mass, 1e-30), 0.0)
    acc += tl.where(slots == N_COLS, tl.sum(sink, 0), 0.0)
    acc += tl.where(slots == N_COLS + 1, tl.sum(ratio, 0), 0.0)
    tl.store(out_ptr + (bh * tl.num_programs(0) + q_block) * SLOTS + slots, acc)
