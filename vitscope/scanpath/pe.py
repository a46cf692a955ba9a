"""OAT's learned positional table: Gaussian-similar rows, fitted offline, then frozen.

The paper (PAPERS.md §3) fits a table W ∈ R^{K×86} so that the cosine between rows i and j
is exp(−(i−j)²/(2σ²)) with σ=2, with equal row norms, and embeds an object at grid cell
(row, col) with target flag f as [W_row ‖ W_col ‖ W_f] truncated to 256 dims (3×86 = 258).

Choices made here:

* The rows start at unit norm (randn/√dim). The cosine gradient scales with 1/‖w‖, so this
  converges in ~1,000 Adam steps (0.3 s on one CPU core, max cosine error ≈ 1e-3) where the
  paper's randn start needed 10,000. After fitting, rows are rescaled to norm √dim so entries
  have unit RMS, like the paper's randn-initialised table.
* For a position width other than 256 (d_model ≠ 512) each component is
  `ceil(width/3)` wide and the concatenation is truncated to `width`; this keeps the Gaussian
  row/column similarity exactly, with no learned projection. At width 256 it is the paper's
  86-dim table truncated from 258.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

SIGMA = 2.0
FIT_STEPS = 1000
FIT_LR = 0.01
FIT_SEED = 1234


def gaussian_similarity(k: int, sigma: float = SIGMA) -> torch.Tensor:
    """Return the target cosine matrix exp(−(i−j)²/(2σ²)), shape (k, k)."""
    i = torch.arange(k, dtype=torch.float32)
    return torch.exp(-((i[:, None] - i[None, :]) ** 2) / (2 * sigma**2))


def table_loss(w: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Return MSE(cosine(W), target) + variance of the row norms (a scalar)."""
    wn = F.normalize(w, dim=1)
    return F.mse_loss(wn @ wn.T, target) + w.norm(dim=1).var()


@functools.lru_cache(maxsize=16)
def _fit_cached(k: int, dim: int, sigma: float, steps: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    w = (torch.randn(k, dim, generator=gen) / math.sqrt(dim)).requires_grad_()
    target = gaussian_similarity(k, sigma)
    opt = torch.optim.Adam([w], lr=FIT_LR)
    for _ in range(steps):
        opt.zero_grad()
        table_loss(w, target).backward()
        opt.step()
    # equal norms are part of the fit; rescaling them to √dim keeps the cosines
    return F.normalize(w.detach(), dim=1) * math.sqrt(dim)


def fit_position_table(
    k: int, dim: int = 86, sigma: float = SIGMA, steps: int = FIT_STEPS, seed: int = FIT_SEED
) -> torch.Tensor:
    """Fit the Gaussian-similarity table; deterministic for a seed.

    Returns W of shape (k, dim), float32, rows of norm √dim, with
    cos(W_i, W_j) ≈ exp(−(i−j)²/(2σ²)). Cached per arguments; a fresh copy is returned.
    """
    if k < 2 or dim < 1:
        raise ValueError(f"position table needs k >= 2 and dim >= 1, got k={k}, dim={dim}")
    with torch.enable_grad():
        return _fit_cached(k, dim, float(sigma), steps, seed).clone()


def component_dim(width: int) -> int:
    """Return the width of each of the row/col/flag components for a position width."""
    return math.ceil(width / 3)


def position_embedding(
    table: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, flags: torch.Tensor, width: int
) -> torch.Tensor:
    """Embed grid positions as [W_row ‖ W_col ‖ W_flag] truncated to `width`.

    `table` is (K, component_dim(width)); `rows`, `cols`, `flags` are integer tensors of the
    same shape S (flag 1 marks the target token or a fixation on the target). Returns
    (*S, width).
    """
    parts = [table[rows], table[cols], table[flags.long()]]
    return torch.cat(parts, dim=-1)[..., :width]
