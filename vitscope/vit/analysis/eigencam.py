"""Eigen-CAM (Bany Muhammad & Yeasin, IJCNN 2020) on ViT patch tokens, for every layer at once.

For each layer the features are the patch tokens the block outputs (the residual stream; prefix
tokens dropped by the model's `TokenLayout`). Per image they are centred over patches (as
pytorch-grad-cam does: without centring the first component is mostly the mean token) and
projected onto their first principal axis: projection = M v1, one value per patch.

Speed: all layers come from one forward pass (`intervene(record_outputs=...)`), and every
(image, layer) is solved in one batched computation on the device. Batched `eigh`/`svd` of
n x n matrices runs as a loop of per-matrix solver calls on CUDA (torch batches them only for
n <= 32), so the top eigenvector of the Gram matrix G of the smaller side (P x P over patches,
or C x C over channels when there are fewer channels than patches) comes from batched matrix
products: subspace iteration, then Rayleigh-Ritz. Eight squarings with trace normalisation,
A <- A^2 / tr(A^2), give A = G^256 / tr; a fixed random block of 8 columns is multiplied by A
four times, and the top eigenvector of the 8 x 8 matrix Q^T G Q, mapped back through the block, is
the axis. The block converges as (l9/l1)^1024, and Rayleigh-Ritz separates l1 from l2 however
close they are, up to float32 rounding; single-vector power iteration converges as
(l2/l1)^steps, which stalls on random weights, where l2/l1 reaches 0.999. The block is
orthonormalised through the eigendecomposition of its 8 x 8 Gram matrix in float64, not
Cholesky QR: A often has fewer than 8 eigenvalues above rounding (the rest underflow), and the
directions it lost become zero columns. For the same reason the block's other Ritz vectors are
not the next axes; the second axis is the top one of G deflated by the first. The cost per map
and axis is ~8 n^3 in batched matmuls, which the GPU runs at full rate, plus six batched 8 x 8
eigendecompositions. With P x P, M v1 = sigma1 u1 and sigma1^2 = u1^T G u1, so the features
are never needed after their Gram matrix. Most maps need far less: ViT features' spectra fall off
(l9/l1 is 0.02-0.08 on the demo and random ViT-B over SynthScenes, at most 0.29 for DINOv2-S on real
photos), so a first try with three squarings and two products (power 16) already holds the top
eigenvector to float32 rounding where l9/l1 is below about 0.17; the matrices whose block has not
provably converged (`converged`, from the block's Ritz values) square on to a second try of power
128, which settles flatter spectra up to about 0.8, such as those of noise pixels through random
weights (l9/l1 about 0.75), and only what is left runs the full iteration (`TRIES`). On ViT-B the
first try's vector differs from float64 `eigh`'s by at most 4e-7 (the full iteration's: 3e-7).

Gram matrices of half-precision features on CUDA are products on the tensor cores: X X^T of the
uncentred features straight from bfloat16 (or float16) into float32 has exact products (8- or 11-bit
significands multiply exactly in float32's 24) and float32 sums, as a float32 product has, and
centring follows as a rank-2 update (`_centred_after`);
where the mean token dominates, so that the subtraction would cost float32 digits, the matrix is
centred first. Float32 features are centred first and multiplied in float32.

Sign: a principal axis has no sign; `orient` fixes it with a rule under which a solver returning -v
gives the same map. The default, `cls-attention`, makes positive the side of the axis that the CLS
token reads from: the Pearson correlation of the projection with the last block's head-averaged
CLS-to-patch attention decides. The CLS token is the model's read-out (a classifier's logits are
a function of it alone; DINO-style backbones are trained so that it summarises the image), and
what it summarises is an average of the patches weighted by that attention, so the rule asks the
model itself which side is the foreground; one reference orients every layer of an image, so the
layer slider never flips a map. On 13 real photos with hand-drawn boxes (DINOv2-S/14) it puts the
map's mass on the object in 13/13 at the last layer (`skew`: 7/13, failing where the object fills
the frame); on the demo model it finds the SynthScenes object in 99.6% (`skew`: 96.6%). `skew`
makes the heavier tail positive (the smaller region), `extreme` |max| >= |min| and `norm` positive
covariance with the token norm, which in large ViTs is dominated by high-norm artifact tokens in
the background (Darcet et al., ICLR 2024). A zero key falls back to `skew`, then `extreme`.

Scaling: as pytorch-grad-cam's BaseCAM, ReLU then min-max per image and layer, so a map is the
oriented projection as a fraction of its peak, max(p, 0) / max(p), the background side at 0. The
customary localization threshold (15% of the maximum) presupposes such maps: on the demo model
(SynthScenes, 500 images, layers 1-5) ReLU maps box 67-73% of objects at 0.15 against 5-12%
without it, and at the best fraction they do as well or better (0.988 against 0.984 at layer 4).
`relu=False` keeps the whole projection, min-max scaled (an affine map of it). The sanity check's
rank correlations use the oriented projections before ReLU, which would tie about half the
patches at 0. Maps stay on the patch grid; `upsample` resizes them.

Randomized-weights check (Adebayo et al. 2018): every image is mapped again by an independent copy
with freshly initialised weights (seeded), and a cascade re-initialises blocks from the top down;
trained and randomized maps are compared orientation-invariantly (|Spearman| of the oriented
projections, SSIM). How much of a map survives randomization depends on the image as well as on
the model: on DINOv2-S/14, |rho| with every block randomized ranges from 0.15 to 0.89 across real
photos, so a mean over a job's few images moved by up to 0.16 between 2 and 5 photos. The check
asks about the model and the method, not about the images, so by default (`sanity_reference`
'fixed') the summary's readings (curves, pass/fail) are measured on a fixed reference sample, the
first `sanity_images` SynthScenes images of seed `REFERENCE_SEED` made at the model's input size:
every job of a model gets the same reading, whatever its images. 'job' measures them on the job's
own images instead. The per-image arrays (`rank_corr`, `ssim`, `cam_random`) are always the job's.
"""

from __future__ import annotations

import copy
import itertools
import math
import warnings
import weakref
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from vitscope.contracts.errors import UserError
from vitscope.contracts.kinds.eigencam import EigenCamParams, SignRule
from vitscope.vit.analysis import faithfulness
from vitscope.vit.analysis.base import AnalysisResult, Progress, no_progress, stream
from vitscope.vit.analysis.gradcam import default_layer, gradcam_map, target_gradients
from vitscope.vit.analysis.precision import exact_sums, model_in, tf32
from vitscope.vit.analysis.rollout import Rollout
from vitscope.vit.data.inputs import Batch, ImageSource, SynthSource
from vitscope.vit.models import LoadedModel, TokenLayout, intervene, seeded
from vitscope.vit.models.hooks import ATTN_IMPLEMENTATION, ModelParts

SQUARINGS = 8
"""Gram squarings of the last try: A = G^256 (trace-normalised), so each product with A is 256 power steps."""
BLOCK = 8
"""Subspace width: the top axis converges as (l9/l1)^power, however close l2 is to l1."""
BLOCK_STEPS = 4
"""Products of the block with A in the last try: power 4 * 256, error ~ (l9/l1)^1024."""
BLOCK_SEED = 0
"""Seed of the start block, so the solver is deterministic."""
TRIES: tuple[tuple[int, int], ...] = ((3, 2), (6, 2), (SQUARINGS, BLOCK_STEPS))
"""(squarings so far, block products) of each try: powers 16, 128 and 1024. The first settles spectra
that fall off (theta_8/theta_1 up to 0.17 against `FAST_TOLERANCE`; l9/l1 is 0.02-0.08 for the demo
and random ViT-B over SynthScenes), the second flat ones up to 0.8, such as noise pixels' through
random weights (l9/l1 about 0.75: all 3,072 matrices of a ViT-B batch of 256 on the H200),
the last whatever is left; each squares on from the last's A. Of the second tries measured there,
two products with G^64 settled every noise matrix where four with G^32 (the same power) left 607,
and took 20.5 ms for the batch against 23.7 ms (and 26.5 ms for going straight to the last)."""
RESCALE_EVERY = 3
"""Squarings between two trace divisions in `_powers`. The matrix it starts from is scaled to max
|entry| 1 (top eigenvalue in [1, n]: a PSD matrix's largest entry is on its diagonal) or to trace 1
(in [1/n, 1]); three squarings raise the top eigenvalue to the 8th power, so A stays within n^8 of 1
(2e18 at n = 196 patches, 1e29 at 4,096), well inside float32's range. Each division is a pass over
every matrix (0.37 ms for a ViT-B batch of 256 on the H200, where a squaring takes 1.4 ms)."""
FAST_TOLERANCE = 1e-12
"""A try's block counts as converged when (theta_8 / theta_1)^power is at most this."""
CANCELLATION = 1e3
"""Largest ratio of uncentred to centred trace at which a half-precision Gram matrix is centred after
the product (`centred_gram`): its float32 error grows with the ratio, and so does what the features'
own bfloat16 rounding does to the matrix. Measured on random features (196 x 768), relative to the
largest entry: at a ratio of 17, 9e-6 against 1.8e-3 from the rounding; at 900, 4.7e-4 against 1.1e-2
(a twentieth). Centred first, the error is 3e-7 to 4e-7 at either ratio."""
TOP_K = 5
RANDOM_SEED_OFFSET = 0x5EED0000
"""Added to the sanity-check seed, so the random copy never equals a `random:` model made at seed 0."""
REFERENCE_SEED = 0
"""SynthScenes seed of the fixed reference sample the randomized-weights readings are measured on."""


# ---------------------------------------------------------------- the principal component


def _trace(a: torch.Tensor) -> torch.Tensor:
    return a.diagonal(dim1=-2, dim2=-1).sum(-1)


def top_eigenvector(gram: torch.Tensor) -> torch.Tensor:
    """Return the unit top eigenvector (..., n) of symmetric PSD matrices `gram` (..., n, n); sign arbitrary.

    Subspace iteration with A = G^(2^squarings), then Rayleigh-Ritz with G (module doc), in the
    `TRIES`: the matrices whose block has not provably converged (`converged`) go on squaring their A
    and iterate a fresh block in the next try; the last try's vectors stand. A zero matrix gives a
    zero vector.
    """
    shape, n = gram.shape[:-1], gram.shape[-1]
    gram = gram.reshape(-1, n, n)
    scale = torch.linalg.vector_norm(gram, ord=math.inf, dim=(-2, -1)).clamp_min(torch.finfo(gram.dtype).tiny)
    a = gram / scale[:, None, None]
    todo: torch.Tensor | None = None  # indices still unsettled; None: all of them
    g, squared = gram, 0
    for i, (squarings, steps) in enumerate(TRIES):
        a = _powers(a, squarings - squared)
        squared = squarings
        found, ritz = _block_ritz(g, a, steps)
        if todo is None:  # the first try, or every matrix went on: this try's vectors are all of them
            vec = found
        else:
            vec[todo] = found
        if i == len(TRIES) - 1:
            break
        slow = ~converged(ritz, steps * 2**squarings, n)
        unsettled = int(slow.sum())  # one device sync per try
        if not unsettled:
            break
        if unsettled < len(slow):  # noise pixels' flat spectra: all of them go on, nothing to gather
            todo = slow.nonzero()[:, 0] if todo is None else todo[slow]
            a, g = a[slow], g[slow]
    return vec.view(shape)


def converged(ritz: torch.Tensor, power: int, n: int) -> torch.Tensor:
    """True (...) where a block of power `power` surely holds the top eigenvector to rounding.

    The block's distance to the top eigenvector shrinks as (l_{w+1} / l_1)^power for a block of
    width w; its smallest Ritz value bounds l_{w+1} from above (l_{w+1} <= l_w, and the Ritz values
    of a converged block are the top eigenvalues), so (theta_w / theta_1)^power <= `FAST_TOLERANCE`
    is enough. A direction the iteration dropped as a zero column (`_orthonormalise`: below sqrt(eps)
    of the block after a product with A = G^8) has a zero Ritz value and passes: the next product
    leaves it at most (sqrt(eps))^2 = eps of the top one, rounding. A block as wide as the matrix
    holds every eigenvector.
    """
    if ritz.shape[-1] >= n:
        return torch.ones(ritz.shape[:-1], dtype=torch.bool, device=ritz.device)
    top = ritz[..., -1].clamp_min(torch.finfo(ritz.dtype).tiny)
    return (ritz[..., 0].clamp_min(0) / top) ** power <= FAST_TOLERANCE


def _powers(a: torch.Tensor, squarings: int) -> torch.Tensor:
    """A^(2^squarings) divided by its trace. Start from G scaled by its max |entry|, not its trace:
    that is positive also for the rounding-indefinite rest of a deflation.

    Only the span of A's products matters (the block is orthonormalised after each), so the trace
    division is there to keep A in range, and every `RESCALE_EVERY` squarings is enough for that.
    """
    tiny = torch.finfo(a.dtype).tiny
    for i in range(squarings):
        a = a @ a
        if (i + 1) % RESCALE_EVERY == 0 or i == squarings - 1:
            a.div_(_trace(a).clamp_min(tiny)[..., None, None])
    return a


def _block_ritz(gram: torch.Tensor, a: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The top Ritz vector (..., n) of the seeded start block multiplied `steps` times by `a`, and the
    block's Ritz values (..., w) in float64, ascending."""
    n = gram.shape[-1]
    start = torch.Generator().manual_seed(BLOCK_SEED)
    q = torch.randn(n, min(n, BLOCK), generator=start).to(gram)
    for _ in range(steps):
        q = _orthonormalise(a @ q)
    q = _orthonormalise(q)  # the second pass makes the basis orthonormal to rounding
    values, ritz = torch.linalg.eigh((q.mT @ gram @ q).double())
    return (q @ ritz[..., -1:].to(q.dtype))[..., 0], values


def _orthonormalise(y: torch.Tensor) -> torch.Tensor:
    """Return an orthonormal basis (..., n, w) of the columns of `y` (..., n, w), via their w x w Gram.

    Directions with singular value below sqrt(eps) of the largest are dropped as zero columns.
    """
    wide = y.double()
    s, w = torch.linalg.eigh(wide.mT @ wide)
    keep = s > s[..., -1:] * torch.finfo(y.dtype).eps
    scale = torch.where(keep, s.clamp_min(torch.finfo(s.dtype).tiny).rsqrt(), 0)
    return y @ (w * scale[..., None, :]).to(y.dtype)


def top_eigenvectors(gram: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Return the top-k unit eigenvectors (..., n, k) of PSD `gram` (..., n, n), by deflation.

    Each is orthogonalised against those before: what is left after deflating a Gram matrix of
    rank < k is rounding noise, whose top eigenvector can be an earlier one again.
    """
    vecs: list[torch.Tensor] = []
    for i in range(k):
        v = top_eigenvector(gram)
        for u in vecs:
            v = v - (v * u).sum(-1, keepdim=True) * u
        v = v / v.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)
        vecs.append(v)
        if i < k - 1:  # deflated for the next axis only (a pass over every matrix)
            lam = (v[..., None, :] @ gram @ v[..., :, None])[..., 0, 0]
            gram = gram - lam[..., None, None] * (v[..., :, None] * v[..., None, :])
    return torch.stack(vecs, -1)


def centred_gram(patches: torch.Tensor) -> torch.Tensor:
    """Return M M^T (..., P, P) of the features (..., P, C) centred over patches, in float32.

    Half-precision features on CUDA take the tensor cores (`_centred_after`); others are centred
    first and multiplied in float32.
    """
    return _centred_after(patches) if _half_on_cuda(patches) else _centred_first(patches)


def layer_grams(patches: Sequence[torch.Tensor]) -> torch.Tensor:
    """`centred_gram` of each layer's features (B, P, C), stacked (B, L, P, P): half-precision features
    on CUDA multiplied into one float32 tensor a layer at a time and centred after, together (no
    float32 copy of the features); others centred first, a float32 copy of one layer at a time."""
    if not _half_on_cuda(patches[0]):
        return torch.stack([_centred_first(p) for p in patches], 1)
    first = patches[0]
    n = first.shape[-2]
    gram = first.new_empty((first.shape[0], len(patches), n, n), dtype=torch.float32)
    for i, p in enumerate(patches):
        _uncentred_gram(p, out=gram[:, i])

    def centred_first(bad: torch.Tensor) -> torch.Tensor:
        return torch.stack([_centred_first(patches[layer][b]) for b, layer in bad.nonzero().tolist()])

    return _centre(gram, centred_first)


def _half_on_cuda(features: torch.Tensor) -> bool:
    """Whether `features` are a half-precision tensor on CUDA, whose products the tensor cores form
    exactly in float32 (`_uncentred_gram`)."""
    return features.is_cuda and features.dtype in (torch.bfloat16, torch.float16)


def _uncentred_gram(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """X X^T (..., P, P) in float32 of features x (..., P, C) holding half-precision values, into `out` if
    given: exact products and float32 sums. Half-precision tensors on CUDA are multiplied straight into
    float32 (`exact_sums`: no reduced-precision split-K reductions); others as float32, in TF32 on CUDA
    (which holds half-precision values exactly)."""
    gram = None
    if _half_on_cuda(x):
        flat = x.reshape(-1, *x.shape[-2:])
        try:
            with exact_sums():
                gram = torch.bmm(flat, flat.mT, out_dtype=torch.float32).view(*x.shape[:-1], x.shape[-2])
        except TypeError:  # torch before 2.8 has no out_dtype: the float32 copy below
            gram = None
    if gram is None:
        with tf32():
            gram = x.float() @ x.float().mT
    return gram if out is None else out.copy_(gram)


def _centred_first(patches: torch.Tensor) -> torch.Tensor:
    m = patches.float()
    m = m - m.mean(-2, keepdim=True)
    return m @ m.mT


def _centred_after(x: torch.Tensor) -> torch.Tensor:
    """M M^T (..., P, P) of features x (..., P, C) holding half-precision values: X X^T with exact
    products and float32 sums (`_uncentred_gram`), then centred as a rank-2 update,
    M M^T = X X^T - s 1^T - 1 s^T + |mu|^2 with mu the mean token and s = X mu (row means of X X^T),
    in float32.

    The subtraction loses float32 digits in proportion to how far the mean dominates (the uncentred
    trace over the centred one); matrices above `CANCELLATION` are centred first instead.
    """
    return _centre(_uncentred_gram(x), lambda bad: _centred_first(x[bad]))


def _centre(gram: torch.Tensor, centred_first: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Centre uncentred float32 Gram matrices X X^T (..., P, P) in place (`_centred_after`); the matrices
    where that would cost float32 digits come from `centred_first(mask)`, mask (...) bool."""
    uncentred = _trace(gram)
    # s_i = x_i . mu is row i's mean of X X^T and |mu|^2 the mean of s, so M M^T = X X^T - u v^T with
    # u = [s - |mu|^2 / 2, 1] and v = [1, s - |mu|^2 / 2]: one rank-2 update (in float32, outside TF32)
    s = gram.mean(-1, keepdim=True)  # (..., P, 1)
    shift = s - 0.5 * s.mean(-2, keepdim=True)
    ones = torch.ones_like(shift)
    n = gram.shape[-1]
    flat = gram.view(-1, n, n)
    flat.baddbmm_(
        torch.cat([shift, ones], -1).view(-1, n, 2), torch.cat([ones, shift], -1).view(-1, n, 2).mT, alpha=-1
    )
    bad = ~(_trace(gram) * CANCELLATION >= uncentred)  # also a zero or rounding-negative centred trace
    if bool(bad.any()):  # one device sync
        gram[bad] = centred_first(bad)
    return gram


def gram_projections(gram: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Return projections (..., k, P) onto the top-k principal axes from the patch Gram (..., P, P).

    M v_i = sigma_i u_i with sigma_i^2 = u_i^T G u_i, so the features themselves are not needed.
    """
    u = top_eigenvectors(gram, k)  # (..., P, k)
    sigma2 = ((gram @ u) * u).sum(-2).clamp_min(0)  # (..., k)
    return (u * sigma2.sqrt()[..., None, :]).mT


def principal_projections(patches: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Return M v_i (..., k, P): the centred features (..., P, C) projected on their top-k axes.

    Sign arbitrary; uses the smaller of the P x P and C x C Gram matrices.
    """
    if patches.shape[-2] <= patches.shape[-1]:
        return gram_projections(centred_gram(patches), k)
    m = patches.float()
    m = m - m.mean(-2, keepdim=True)
    axes = top_eigenvectors(m.mT @ m, k)  # (..., C, k)
    return (m @ axes).mT


# ---------------------------------------------------------------- sign and scale


def orient(
    proj: torch.Tensor,
    rule: SignRule = "skew",
    norms: torch.Tensor | None = None,
    reference: torch.Tensor | None = None,
) -> torch.Tensor:
    """Return `proj` (..., P) with its sign fixed per map; `orient(-p) == orient(p)` (see module doc).

    `cls-attention`: positive correlation with `reference` (..., P) or broadcastable, the last
    block's head-averaged CLS-to-patch attention; `skew`: third moment >= 0; `extreme`: max >=
    |min|; `norm`: positive covariance with `norms` (..., P), the patch tokens' norms. A zero key
    falls back to the next rules; only a map symmetric under all of them keeps its sign.
    """
    tiny = torch.finfo(proj.dtype).tiny
    x = proj / proj.abs().amax(-1, keepdim=True).clamp_min(tiny)  # cubes stay in range
    skew = x.pow(3).sum(-1)
    extreme = x.amax(-1) + x.amin(-1)
    keys = {"skew": [skew, extreme], "extreme": [extreme, skew]}.get(rule)
    if keys is None:
        given = {"norm": norms, "cls-attention": reference}[rule]
        if given is None:
            raise ValueError(f"the {rule!r} sign rule needs its reference (norms or CLS attention)")
        keys = [_covariance(x, given.float().expand_as(x)), skew, extreme]
    key = keys[-1]
    for k in reversed(keys[:-1]):
        key = torch.where(k != 0, k, key)
    return proj * torch.where(key < 0, -1.0, 1.0).to(proj.dtype)[..., None]


def _covariance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Covariance over the last axis (its sign is the Pearson correlation's)."""
    return (x * (y - y.mean(-1, keepdim=True))).sum(-1)


class ClsReference:
    """An attention sink keeping the head-averaged CLS-to-patch attention (B, P) of one `layer`,
    the `cls-attention` sign reference; other layers (and this one) go on to `inner` if given."""

    def __init__(self, layer: int, layout: TokenLayout, inner: Callable[[int, torch.Tensor], None] | None):
        self.layer, self.layout, self.inner = layer, layout, inner
        self.attention: torch.Tensor | None = None

    def __call__(self, layer: int, probs: torch.Tensor) -> None:
        """Take one layer's probabilities (B, heads, T, T)."""
        if self.inner is not None:
            self.inner(layer, probs)
        if layer == self.layer:
            row = probs.detach()[:, :, self.layout.cls_index].float().mean(1)
            self.attention = self.layout.patches(row, dim=-1)

    def scores(self, layer: int, query: torch.Tensor, key: torch.Tensor, scaling: float) -> None:
        """Take one layer's queries and keys (B, heads, T, d) (a score sink: the layer keeps its fused
        attention) and compute the CLS row of its probabilities alone, in float32."""
        if layer == self.layer:
            cls = query[:, :, self.layout.cls_index].float() * scaling  # (B, heads, d)
            row = torch.einsum("bhd,bhtd->bht", cls, key.float()).softmax(-1).mean(1)
            self.attention = self.layout.patches(row, dim=-1)


def scale_unit(maps: torch.Tensor, relu: bool = False) -> torch.Tensor:
    """Return `maps` (..., n) min-max scaled to [0, 1] over the last axis (ReLU first if asked).

    A constant map becomes all zeros.
    """
    x = maps.clamp_min(0) if relu else maps
    lo = x.amin(-1, keepdim=True)
    span = (x.amax(-1, keepdim=True) - lo).clamp_min(torch.finfo(x.dtype).tiny)
    return (x - lo) / span


def upsample(cam: torch.Tensor | np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Return grid maps (..., rows, cols) resized bilinearly (patch values at patch centres) to (..., H, W)."""
    x = torch.as_tensor(cam).float()
    lead = x.shape[:-2]
    flat = x.reshape(-1, 1, *x.shape[-2:])
    out = nn.functional.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    return out.reshape(*lead, *size)


# ---------------------------------------------------------------- maps of one batch


@dataclass
class EigenMaps:
    """Eigen-CAM of a batch: `cam` (B, L, rows, cols) in [0, 1]; `projection` (B, L, k, P) oriented
    raw projections; `cam2` (B, L, rows, cols) of the second component, or None."""

    cam: torch.Tensor
    projection: torch.Tensor
    cam2: torch.Tensor | None = None


def eigencam_maps(
    outputs: Mapping[int, torch.Tensor] | Sequence[torch.Tensor],
    layout: TokenLayout,
    *,
    components: int = 1,
    sign_rule: SignRule = "skew",
    relu: bool = True,
    reference: torch.Tensor | None = None,
) -> EigenMaps:
    """Return the Eigen-CAM maps of block outputs, one (B, T, C) tensor per layer, in the given order.

    `reference` (B, P): the last block's CLS-to-patch attention, for the `cls-attention` sign rule
    (the analysis' default; this function needs only the outputs, so `skew` is its own default).
    """
    tokens = list(outputs.values()) if isinstance(outputs, Mapping) else list(outputs)
    patches = [layout.patches(t.detach(), dim=1) for t in tokens]
    with torch.no_grad():
        if layout.n_patches <= patches[0].shape[-1]:
            proj = gram_projections(layer_grams(patches), components)
        else:
            proj = principal_projections(torch.stack(patches, 1), components)
        norms = torch.stack([p.float().norm(dim=-1) for p in patches], 1) if sign_rule == "norm" else None
        ref = reference[:, None] if reference is not None else None  # one reference for every layer
        oriented = torch.stack(
            [orient(proj[:, :, i], sign_rule, norms, ref) for i in range(components)], 2
        )  # (B, L, k, P)
        cams = layout.to_grid(scale_unit(oriented, relu))
    return EigenMaps(cams[:, :, 0], oriented, cams[:, :, 1] if components > 1 else None)


@dataclass(frozen=True)
class Settings:
    """What one pass computes: Eigen-CAM `layers`, Grad-CAM block (None = no baselines), and so on."""

    layers: tuple[int, ...]
    gradcam_layer: int | None
    rollout: bool = True
    classifier: bool = True
    components: int = 1
    sign_rule: SignRule = "cls-attention"
    relu: bool = True

    @classmethod
    def of(cls, lm: LoadedModel, params: EigenCamParams) -> Settings:
        """Validate `params` against the model; raise `UserError` for layers it does not have."""
        n = lm.num_layers
        layers = tuple(range(n)) if params.layers is None else tuple(params.layers)
        wanted = [*layers, *([params.gradcam_layer] if params.gradcam_layer is not None else [])]
        bad = [layer for layer in wanted if not -n <= layer < n]
        if bad:
            raise UserError(f"layers {bad} are not in the model: it has layers 0..{n - 1}")
        if not layers:
            raise UserError(f"'layers' is empty: give some of 0..{n - 1}, or omit it for all")
        gl = default_layer(n) if params.gradcam_layer is None else params.gradcam_layer % n
        return cls(
            layers=tuple(layer % n for layer in layers),
            # Grad-CAM needs a class score: a backbone has none (never a number from an invented head)
            gradcam_layer=gl if params.baselines and lm.classifier else None,
            rollout=params.baselines,
            classifier=lm.classifier,
            components=2 if params.second_component else 1,
            sign_rule=params.sign_rule,
            relu=params.relu,
        )


@dataclass
class BatchMaps:
    """Everything one pass gives: `logits` (B, classes), Eigen-CAM, and the baselines (B, rows, cols)
    scaled to [0, 1] (None without baselines)."""

    logits: torch.Tensor
    eigen: EigenMaps
    rollout: torch.Tensor | None = None
    gradcam: torch.Tensor | None = None


def analyse_batch(lm: LoadedModel, pixels: torch.Tensor, settings: Settings) -> BatchMaps:
    """Run one forward pass (plus one backward for Grad-CAM) and return all maps of `pixels` (B, 3, H, W)."""
    layout = lm.layout_for((pixels.shape[-2], pixels.shape[-1]))
    gl = settings.gradcam_layer
    baselines, grad = settings.rollout or gl is not None, gl is not None
    record = set(settings.layers) | ({gl} if gl is not None else set())
    rollout = Rollout() if settings.rollout else None
    last = lm.num_layers - 1
    reference = ClsReference(last, layout, rollout) if settings.sign_rule == "cls-attention" else None
    capture: bool | set[int] = True if baselines else ({last} if reference else False)
    # the baselines' probabilities are materialised anyway; alone, the reference takes queries and keys
    sinks: dict[str, Any] = (
        {"sink": reference or rollout}
        if baselines
        else {"score_sink": reference.scores if reference else None}
    )
    with (
        torch.set_grad_enabled(grad),
        intervene(lm.parts, capture=capture, record_outputs=record, **sinks) as rec,
    ):
        # pixels requiring grad keep the tokens in the graph even if the weights are frozen
        logits = lm.forward(pixels.detach().requires_grad_(grad))
    eigen = eigencam_maps(
        [rec.outputs[layer] for layer in settings.layers],
        layout,
        components=settings.components,
        sign_rule=settings.sign_rule,
        relu=settings.relu,
        reference=reference.attention if reference is not None else None,
    )
    out = BatchMaps(logits.detach(), eigen)
    if gl is not None:
        tokens = rec.outputs[gl]
        grads = target_gradients(logits, tokens, logits.detach().argmax(-1))
        out.gradcam = _scale_grid(gradcam_map(tokens, grads, layout))
    if rollout is not None:
        out.rollout = _scale_grid(rollout.cls_map(layout))
    return out


def _scale_grid(maps: torch.Tensor) -> torch.Tensor:
    """Min-max scale grid maps (B, rows, cols) per image."""
    return scale_unit(maps.flatten(-2)).unflatten(-1, maps.shape[-2:])


# ---------------------------------------------------------------- randomized-weights sanity check

_RANDOM_COPIES: weakref.WeakKeyDictionary[nn.Module, dict[tuple[Any, ...], LoadedModel]] = (
    weakref.WeakKeyDictionary()
)


def randomized_copy(lm: LoadedModel, seed: int = 0) -> LoadedModel:
    """Return `lm`'s architecture with freshly initialised weights (seeded), same device, dtype, layout.

    Built with the model class's own initialisation (`type(model)(config)`), so the weight
    statistics are those of an untrained model of the family (Adebayo et al., 2018). Cached per
    model, seed, device and dtype in the process, and the drawn weights on the machine
    (`vitscope.vit.models.seeded`).
    """
    key = (seed, str(lm.device), lm.dtype)
    cache = _RANDOM_COPIES.setdefault(lm.model, {})
    if key not in cache:
        model = seeded.build(type(lm.model), copy.deepcopy(lm.model.config), RANDOM_SEED_OFFSET + seed)
        model.set_attn_implementation(ATTN_IMPLEMENTATION)
        module: nn.Module = model
        module.eval().to(device=lm.device, dtype=lm.dtype)
        parts = _same_parts(lm.model, model, lm.parts)
        cache[key] = replace(lm, spec=f"{lm.spec} (random weights, seed {seed})", model=model, parts=parts)
    return cache[key]


def _same_parts(original: nn.Module, clone: nn.Module, parts: ModelParts) -> ModelParts:
    """The parts of `clone` at the same module paths as `parts` are in `original`."""
    names = {id(m): name for name, m in original.named_modules()}

    def find(m: nn.Module) -> nn.Module:
        return clone.get_submodule(names[id(m)])

    return ModelParts(
        tuple(find(m) for m in parts.attention),
        tuple(find(m) for m in parts.blocks),
        find(parts.embeddings),
        parts.block_returns_tuple,
        parts.attention_arity,
    )


def rank_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the Spearman correlation (...) of maps a, b (..., n) over their last axis.

    Ties get average ranks; a constant map gives NaN.
    """
    ra = average_ranks(a)
    rb = average_ranks(b)
    ra = ra - ra.mean(-1, keepdims=True)
    rb = rb - rb.mean(-1, keepdims=True)
    den = np.sqrt((ra * ra).sum(-1) * (rb * rb).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(-1) / den, np.nan)


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n (float64, ...) of x (..., n) along its last axis, ties given their average rank, a slice
    holding a NaN all NaN: scipy's `rankdata(x, axis=-1)`, from torch's sort on every core (scipy ranks
    on one; a job ranks a few million map values).

    Sorted, a run of equal values at positions start..end gets rank (start + end) / 2 + 1.
    """
    values = torch.tensor(np.asarray(x))  # a copy: the maps may be read-only (a shared reference sample)
    n = values.shape[-1]
    if n == 0:
        return np.empty(values.shape, np.float64)
    ordered, order = values.sort(dim=-1)
    position = torch.arange(n).expand_as(ordered)
    differs = ordered[..., 1:] != ordered[..., :-1]
    edge = torch.ones((*values.shape[:-1], 1), dtype=torch.bool)
    start = torch.where(torch.cat([edge, differs], -1), position, 0).cummax(-1).values
    end = torch.where(torch.cat([differs, edge], -1), position, n - 1).flip(-1).cummin(-1).values.flip(-1)
    sorted_ranks = (start + end).double() / 2 + 1
    ranks = torch.empty(values.shape, dtype=torch.float64).scatter_(-1, order, sorted_ranks)
    ranks[values.isnan().any(-1)] = math.nan
    return ranks.numpy()


def cascade_projections(
    lm: LoadedModel, random_lm: LoadedModel, pixels: torch.Tensor, settings: Settings, batch_size: int
) -> np.ndarray:
    """Eigen-CAM projections under cascading randomization (Adebayo et al. 2018): (B, L + 1, layers, P).

    Step s has the top s blocks of `lm` replaced by `random_lm`'s (step 0 is the trained model,
    step L the whole stack), on one private copy of the weights; the maps keep their own sign rule,
    so compare them orientation-invariantly. `pixels` go through in chunks of `batch_size`.
    """
    model = copy.deepcopy(lm.model)
    work = replace(lm, model=model, parts=_same_parts(lm.model, model, lm.parts))
    plain = replace(settings, gradcam_layer=None, rollout=False, components=1)

    def projections() -> torch.Tensor:
        chunks = pixels.split(batch_size)
        return torch.cat([analyse_batch(work, chunk, plain).eigen.projection[:, :, 0] for chunk in chunks])

    steps = [projections()]
    for block, random_block in zip(
        reversed(work.parts.blocks), reversed(random_lm.parts.blocks), strict=True
    ):
        block.load_state_dict(random_block.state_dict())
        steps.append(projections())
    return torch.stack(steps, 1).float().cpu().numpy()


def similarity(
    trained: np.ndarray, other: np.ndarray, grid: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Orientation-invariant similarity of projections (..., P): (|Spearman|, SSIM), each (...).

    A principal axis has no sign, and each model orients its own maps, so the randomized map is
    first oriented the same way as the trained one (the sign of their correlation): |rho|, then
    the SSIM of the two min-max scaled maps.
    """
    rho = rank_corr(trained, other)
    sign = np.where(np.nan_to_num(rho) < 0, -1.0, 1.0)[..., None]
    return np.abs(rho), ssim(trained, other * sign, grid)


def ssim(a: np.ndarray, b: np.ndarray, grid: tuple[int, int], window: int = 3) -> np.ndarray:
    """Return the mean structural similarity (...) of maps a, b (..., rows * cols), each min-max scaled.

    Wang et al. 2004 with a `window` x `window` uniform window (the grids are small), C1 = 0.01^2,
    C2 = 0.03^2 for a data range of 1.
    """
    x, y = (
        torch.from_numpy(np.array(m, dtype=np.float64)) for m in (a, b)
    )  # copies: inputs may be read-only
    x, y = scale_unit(x), scale_unit(y)
    lead = x.shape[:-1]
    x, y = (m.reshape(-1, 1, *grid) for m in (x, y))

    def blur(m: torch.Tensor) -> torch.Tensor:
        return nn.functional.avg_pool2d(m, window, stride=1, padding=window // 2, count_include_pad=False)

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    index = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return index.mean((-3, -2, -1)).reshape(lead).numpy()


# ---------------------------------------------------------------- the job


def top_k(logits: torch.Tensor, k: int = TOP_K) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (class indices (B, k), probabilities (B, k)), k capped at the number of classes."""
    probs = logits.float().softmax(-1)
    values, indices = probs.topk(min(k, probs.shape[-1]), dim=-1)
    return indices, values


def run(
    lm: LoadedModel, source: ImageSource, params: EigenCamParams, progress: Progress = no_progress
) -> AnalysisResult:
    """Eigen-CAM of every image and layer, with baselines and the sanity check (arrays in docs/CONTRACTS.md).

    Arrays: `images` (N, H, W, 3) uint8, `cam` (N, L, rows, cols), `cam2`, `rollout` and `gradcam`
    (N, rows, cols), `cam_random` (N, L, rows, cols), `rank_corr` (N, L), `rank_corr_rollout`
    and `rank_corr_gradcam` (N,), `top5_idx` and `top5_prob` (N, 5), `labels` (N,), all maps in [0, 1];
    with `faithfulness`, every map's deletion and insertion scores and box scores (`faithfulness.py`).
    """
    lm = model_in(lm, params.dtype)
    settings = Settings.of(lm, params)
    on_job = params.sanity_reference == "job"
    chunks: dict[str, list[Any]] = defaultdict(list)
    progress(0.0, "Eigen-CAM")
    cascade_inputs: list[torch.Tensor] = []  # the first sanity_images, for one cascade after the pass
    span = (0.0, 0.9 if params.sanity_check else 1.0)  # the randomization cascade takes the rest
    batches = stream(source, params.batch_size, lm.input_geometry, progress, "Eigen-CAM", span)
    # the first batch is asked for before the randomized copy is built (its initialisation runs on the
    # CPU): a rendered source renders the next batches meanwhile
    first = next(batches)
    random_lm = randomized_copy(lm, params.random_seed) if params.sanity_check else None
    for batch in itertools.chain([first], batches):
        pixels = lm.preprocess(batch.images)
        maps = analyse_batch(lm, pixels, settings)
        _collect(chunks, "", maps, batch, settings.classifier)
        if params.faithfulness:
            faithfulness.collect(chunks, lm, pixels, maps, batch, params)
        if random_lm is not None:
            _collect(chunks, "_random", analyse_batch(random_lm, pixels, settings), None)
            if on_job:
                cascade_inputs.append(pixels[: params.sanity_images - sum(len(p) for p in cascade_inputs)])
    arrays = {name: np.concatenate(parts) for name, parts in chunks.items()}
    sample = arrays  # the images the summary's randomized-weights readings come from
    if random_lm is not None:
        progress(span[1], f"randomized-weights check on {summary_sample(params)}")
        if on_job:
            cascade = torch.cat(cascade_inputs)
            arrays["cascade"] = cascade_projections(lm, random_lm, cascade, settings, params.batch_size)
        else:
            sample = reference_sample(lm, random_lm, settings, params.sanity_images, params.batch_size)
            arrays["cascade"] = sample["cascade"]
        progress(1.0, "randomized-weights check done")
    return _result(lm, settings, params, arrays, sample)


def summary_sample(params: EigenCamParams) -> str:
    """Where the summary's randomized-weights readings come from: 'job', or the dataset spec of the
    fixed reference sample."""
    if params.sanity_reference == "job":
        return "job"
    return f"synthscenes:{params.sanity_images}:seed={REFERENCE_SEED}"


def reference_pixels(lm: LoadedModel, n: int) -> torch.Tensor:
    """The fixed reference sample, preprocessed: the first `n` SynthScenes images of `REFERENCE_SEED`,
    generated at the model's input size. Every job of a model sees the same pixels, so the
    randomized-weights readings are the model's and method's, not the job's images'."""
    [batch] = SynthSource(n, REFERENCE_SEED).batches(n, lm.input_geometry)
    return lm.preprocess(batch.images)


_REFERENCE_SAMPLES: weakref.WeakKeyDictionary[nn.Module, dict[tuple[Any, ...], dict[str, np.ndarray]]] = (
    weakref.WeakKeyDictionary()
)


def reference_sample(
    lm: LoadedModel, random_lm: LoadedModel, settings: Settings, n: int, batch_size: int
) -> dict[str, np.ndarray]:
    """The fixed reference sample's trained and randomized maps and its cascade, as the job collects
    its own (`cascade` (n, L + 1, layers, P) besides). Every job of a model reads the same sample, so
    it is computed once per model, random copy, settings, size and batch size in a process (the
    batch size too: the same chunks give the same numbers bit for bit) and kept with the model."""
    key = (random_lm.spec, settings, n, batch_size, lm.dtype, str(lm.device), lm.layout.image_size)
    kept = _REFERENCE_SAMPLES.setdefault(lm.model, {})
    if key not in kept:
        pixels = reference_pixels(lm, n)
        chunks: dict[str, list[Any]] = defaultdict(list)
        for chunk in pixels.split(batch_size):
            _collect(chunks, "", analyse_batch(lm, chunk, settings), None)
            _collect(chunks, "_random", analyse_batch(random_lm, chunk, settings), None)
        sample = {name: np.concatenate(parts) for name, parts in chunks.items()}
        sample["cascade"] = cascade_projections(lm, random_lm, pixels, settings, batch_size)
        for array in sample.values():
            array.setflags(write=False)  # shared by every job that reads the sample
        kept[key] = sample
    return kept[key]


def _collect(
    chunks: dict[str, list[Any]], suffix: str, maps: BatchMaps, batch: Batch | None, classifier: bool = True
) -> None:
    """Append one batch's arrays (CPU numpy) under their result names (+ suffix)."""
    found: dict[str, torch.Tensor | None] = {
        "projection": maps.eigen.projection[:, :, 0],  # (B, L, P): for the rank correlations
        "cam": maps.eigen.cam,
        "cam2": maps.eigen.cam2,
        "rollout": maps.rollout,
        "gradcam": maps.gradcam,
    }
    for name, value in found.items():
        if value is not None:
            chunks[name + suffix].append(value.float().cpu().numpy())
    if batch is not None:
        if classifier:
            idx, prob = top_k(maps.logits)
            chunks["top5_idx"].append(idx.cpu().numpy())
            chunks["top5_prob"].append(prob.cpu().numpy())
        chunks["crop_boxes"].append(batch.crop_boxes)
        chunks["original_sizes"].append(batch.original_sizes)
        chunks["images"].append(batch.images)
        chunks["labels"].append(batch.labels)


def _result(
    lm: LoadedModel,
    settings: Settings,
    params: EigenCamParams,
    arrays: dict[str, np.ndarray],
    sample: dict[str, np.ndarray],
) -> AnalysisResult:
    """Assemble the result: arrays under contract names, rank correlations, and the summary, whose
    randomized-weights readings come from `sample` (the job's own arrays, or the reference sample's)."""
    result = AnalysisResult()
    names = ("images", "cam", "cam2", "rollout", "gradcam", "top5_idx", "top5_prob", "labels")
    for name in (*names, "crop_boxes", "original_sizes"):
        if name in arrays:
            result.add(name, arrays[name])
    readings: dict[str, np.ndarray] = {}
    if "cam_random" in arrays:
        result.add("cam_random", arrays["cam_random"])
        for name, array in randomization(arrays, lm.layout.grid).items():
            result.add(name, array)
        readings = result.arrays if sample is arrays else randomization(sample, lm.layout.grid)
    faithfulness.add_results(result, arrays)
    result.summary = _summary(lm, settings, params, result.arrays, readings)
    return result


def randomization(arrays: Mapping[str, np.ndarray], grid: tuple[int, int]) -> dict[str, np.ndarray]:
    """The randomized-weights check of one set of images, from their trained and randomized maps:
    per image and layer `rank_corr` and `ssim` (independent copy), `cascade_rank_corr` and
    `cascade_ssim` (n, S, L) along the cascade, and `rank_corr_<baseline>` (N,) of rollout and Grad-CAM."""
    out: dict[str, np.ndarray] = {}
    out["rank_corr"], out["ssim"] = similarity(arrays["projection"], arrays["projection_random"], grid)
    steps = arrays["cascade"]  # (n, S, L, P), step 0 = the trained model
    trained = np.broadcast_to(steps[:, :1], steps.shape)
    out["cascade_rank_corr"], out["cascade_ssim"] = similarity(trained, steps, grid)
    for name in ("rollout", "gradcam"):
        if name in arrays:
            n = len(arrays[name])
            out[f"rank_corr_{name}"] = rank_corr(
                arrays[name].reshape(n, -1), arrays[f"{name}_random"].reshape(n, -1)
            )
    return out


_NO_CLASSIFIER = {
    name: "the model is a backbone without a classifier: there are no class scores to rank or differentiate"
    for name in ("top5_idx", "top5_prob", "gradcam", "rank_corr_gradcam")
}


def _label(names: list[str], i: int) -> str | None:
    """Class name of index i, None for unknown (-1) labels."""
    return names[i] if 0 <= i < len(names) else None


def _top5(names: list[str], idx: np.ndarray, prob: np.ndarray) -> list[list[dict[str, Any]]]:
    """Per image, the top-5 classes as {index, label, prob}, most probable first."""
    return [
        [
            {"index": int(i), "label": _label(names, int(i)), "prob": float(p)}
            for i, p in zip(ri, rp, strict=True)
        ]
        for ri, rp in zip(idx, prob, strict=True)
    ]


def _summary(
    lm: LoadedModel,
    settings: Settings,
    params: EigenCamParams,
    arrays: Mapping[str, np.ndarray],
    readings: Mapping[str, np.ndarray],
) -> dict[str, Any]:
    """The JSON summary: labels, top-5 names and probabilities, grid, layers and what was computed."""
    summary: dict[str, Any] = {
        "images": len(arrays["images"]),
        "labels": [_label(lm.labels, int(i)) for i in arrays["labels"]],
        "label_names": lm.labels,
        "top5": _top5(lm.labels, arrays["top5_idx"], arrays["top5_prob"]) if "top5_idx" in arrays else [],
        "grid": list(lm.layout.grid),
        "image_size": list(lm.layout.image_size),
        "prefix_tokens": list(lm.layout.prefix_roles),
        "layers": list(settings.layers),
        "components": settings.components,
        "sign_rule": settings.sign_rule,
        "relu": settings.relu,
        "gradcam_layer": settings.gradcam_layer,
        "left_out": {} if settings.classifier else _NO_CLASSIFIER,
    }
    if readings:
        summary["random_seed"] = params.random_seed
        summary["sanity_reference"] = summary_sample(params)
        summary["rank_corr_by_layer"] = _nanmean(readings["rank_corr"], 0)
        summary["ssim_by_layer"] = _nanmean(readings["ssim"], 0)
        summary["cascade_rank_corr"] = _nanmean(readings["cascade_rank_corr"][:, :, -1], 0)
        summary["cascade_ssim"] = _nanmean(readings["cascade_ssim"][:, :, -1], 0)
        summary["cascade_images"] = len(readings["cascade_rank_corr"])
        for base in ("rollout", "gradcam"):
            if f"rank_corr_{base}" in readings:
                summary[f"rank_corr_{base}"] = _nanmean(readings[f"rank_corr_{base}"], None)
        summary["sanity_threshold"] = faithfulness.SANITY_MAX_RANK_CORR
        summary["sanity"] = faithfulness.sanity_readings(settings.layers, readings)
    return {**summary, **faithfulness.summary(lm, settings, arrays)}


def _nanmean(x: np.ndarray, axis: int | None) -> Any:
    """Mean ignoring NaN (constant maps), as JSON-ready floats, None where nothing is defined."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: "mean of empty slice"
        mean = np.nanmean(x, axis=axis)
    values = [float(v) if np.isfinite(v) else None for v in np.atleast_1d(mean)]
    return values if axis is not None else values[0]
