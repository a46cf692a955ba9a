"""Faithfulness of saliency maps: deletion and insertion (RISE), mass in the box, the pointing game.

Every map is read as an order of the patch grid, most salient first (`patch_order`; ties are
broken by a seeded random key, never by position, so a map that is 0 over half the grid does not
delete the top rows first). Following RISE (Petsiuk et al., BMVC 2018), deletion removes the
patches in that order and insertion restores them, in `steps` equal steps of the patch count
(`step_counts`); a removed patch shows the same region of the baseline image, the image blurred
with a Gaussian of sigma = `BLUR_FRACTION` of its shorter side (RISE's insertion baseline;
replacing with a blur keeps the picture's colours and brightness, so the curve measures the
loss of structure, not a shift to an out-of-distribution grey). The score is the probability of
the class the model predicts on the clean image; a backbone without a classifier has none, and
its score is the cosine similarity of the final CLS embedding to the clean image's. A curve has
`steps + 1` points at fractions 0..1 of the patches; its area (`auc`, trapezoid rule on [0, 1])
is the deletion AUC (lower is more faithful) or the insertion AUC (higher is). All perturbed
images of one step (every image, every method, deletion and insertion) go through one forward.

Where an image has a box (SynthScenes; NaN = none), `mass_in_box` is the share of the map's mass
inside the box, on the patch grid with each patch weighted by the share of its area inside the
box (the mass of the nearest-neighbour upsampled map), beside `box_share`, the box's share of
the image: the mass a uniform map would put there. The pointing game (Zhang et al., ECCV 2016)
counts a hit when the centre of the map's peak patch lies in the box; the Weighting Game (2023)
shows why the hit rate alone flatters a map, hence the mass beside it.

Chance and a trivial prior are scored the same way: `random`, a seeded uniform map per image
(seeded by the image's position in the source, so batching does not change it), and `centre`, a
Gaussian bump on the grid centre (sigma a quarter of the grid's shorter side).

The randomized-weights check as a number (`sanity_readings`): after Adebayo et al. (NeurIPS
2018), a map that explains the model must change when the weights are re-initialised. Each
method's reading is the mean |Spearman| between its trained and fully randomized maps: for
Eigen-CAM layers the last step of the cascade (every block randomized, top down), for rollout
and Grad-CAM the independent random copy. It passes below `SANITY_MAX_RANK_CORR`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from vitscope.vit.models import LoadedModel

if TYPE_CHECKING:  # eigencam imports this module; the types only are needed here
    from vitscope.contracts.kinds.eigencam import EigenCamParams
    from vitscope.vit.analysis.eigencam import BatchMaps, Settings
    from vitscope.vit.data.inputs import Batch

BASELINES = ("random", "centre")
"""The reference maps scored beside the methods: chance and a centre prior."""
BLUR_FRACTION = 0.1
"""Sigma of the baseline blur as a fraction of the image's shorter side."""
CENTRE_SIGMA = 0.25
"""Sigma of the centre prior as a fraction of the grid's shorter side."""
SANITY_MAX_RANK_CORR = 0.5
"""A method passes the randomized-weights check when its mean |Spearman| to the fully randomized
model's map is below this: trained and random maps share under a quarter of their rank variance."""
RESULTS = ("deletion_auc", "insertion_auc", "deletion_curve", "insertion_curve")
BOX_RESULTS = ("mass_in_box", "pointing_hit", "box_share")


# ---------------------------------------------------------------- orders and perturbations


def patch_order(maps: torch.Tensor, tiebreak: torch.Tensor | None = None) -> torch.Tensor:
    """Return patch indices (..., P), most salient first, of `maps` (..., P).

    Equal values go in the descending order of `tiebreak` (broadcastable to `maps`), else by index.
    """
    index = torch.arange(maps.shape[-1], device=maps.device).expand_as(maps)
    if tiebreak is not None:
        index = tiebreak.expand_as(maps).argsort(dim=-1, descending=True, stable=True)
    by_value = maps.gather(-1, index).argsort(dim=-1, descending=True, stable=True)
    return index.gather(-1, by_value)


def step_counts(patches: int, steps: int) -> torch.Tensor:
    """Return how many patches are removed (or restored) at each step: (steps + 1,), 0 to `patches`.

    `steps` is capped at `patches`, so every step moves at least one patch.
    """
    steps = max(1, min(steps, patches))
    return torch.round(torch.arange(steps + 1, dtype=torch.float64) * patches / steps).long()


def ranks(order: torch.Tensor) -> torch.Tensor:
    """Return each patch's position (..., P) in `order` (..., P): the inverse permutation."""
    out = torch.empty_like(order)
    out.scatter_(-1, order, torch.arange(order.shape[-1], device=order.device).expand_as(order))
    return out


def blurred(pixels: torch.Tensor, fraction: float = BLUR_FRACTION) -> torch.Tensor:
    """Return `pixels` (B, C, H, W) blurred by a Gaussian of sigma = `fraction` of min(H, W) (reflected edges).

    Computed in float32 on a contiguous copy whatever `pixels` is: a cheap pass, and oneDNN 3.x on a
    CPU with AVX512-BF16 never finished building its depthwise kernel for bfloat16 channels-last
    images (minutes in `jit_brdgmm_kernel_base_t::generate` for 2 images of 32 x 32)."""
    sigma = max(fraction * min(pixels.shape[-2:]), 1e-3)
    radius = min(int(3 * sigma), min(pixels.shape[-2:]) - 1)
    t = torch.arange(-radius, radius + 1, device=pixels.device, dtype=torch.float32)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = pixels.shape[1]
    x = nn.functional.pad(pixels.float().contiguous(), (radius, radius, radius, radius), mode="reflect")
    x = nn.functional.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return nn.functional.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c).to(pixels.dtype)


def perturbed(
    pixels: torch.Tensor, baseline: torch.Tensor, keep: torch.Tensor, grid: tuple[int, int]
) -> torch.Tensor:
    """Return images (B * M, C, H, W): image b where keep[b, m] (B, M, P) is True, the baseline elsewhere."""
    b, m = keep.shape[:2]
    mask = keep.reshape(b * m, 1, *grid).to(pixels.dtype)
    mask = nn.functional.interpolate(mask, size=pixels.shape[-2:], mode="nearest").bool()
    clean, base = (x.repeat_interleave(m, 0) for x in (pixels, baseline))
    return torch.where(mask, clean, base)


def scores(lm: LoadedModel, pixels: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Return the score (n,) of each image in `pixels` (n, C, H, W) against `reference` (n, ...).

    A classifier: the probability of class reference[i] (long (n,)); a backbone: the cosine of the
    final CLS embedding to reference[i] (n, hidden), the clean image's embedding.
    """
    with torch.no_grad():
        out = lm.forward(pixels).float()
    if lm.classifier:
        return out.softmax(-1).gather(-1, reference[:, None])[:, 0]
    return nn.functional.cosine_similarity(out, reference.float(), dim=-1)


def auc(curve: np.ndarray | torch.Tensor, x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Return the area (...) under `curve` (..., S) sampled at fractions `x` (S,) of [0, 1] (trapezoid rule)."""
    y, at = np.asarray(curve, dtype=np.float64), np.asarray(x, dtype=np.float64)
    return np.asarray(((y[..., 1:] + y[..., :-1]) / 2 * np.diff(at)).sum(-1))


def curves(
    lm: LoadedModel,
    pixels: torch.Tensor,
    maps: torch.Tensor,
    reference: torch.Tensor,
    steps: int,
    tiebreak: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Deletion and insertion curves (B, M, S) of `maps` (B, M, P) for `pixels` (B, C, H, W), and the
    fractions x (S,) they are sampled at; S = steps + 1 (steps capped at P).

    The first and last points are shared by every method (the clean image, the baseline): one
    forward gives them; each step between is one forward of all B * M * 2 perturbed images.
    """
    grid = lm.layout_for((pixels.shape[-2], pixels.shape[-1])).grid
    b, m, p = maps.shape
    counts = step_counts(p, steps).to(maps.device)
    rank = ranks(patch_order(maps, tiebreak))  # (B, M, P)
    baseline = blurred(pixels)
    ends = scores(lm, torch.cat([pixels, baseline]), torch.cat([reference, reference]))
    clean, base = (e[:, None].expand(b, m) for e in ends.split(b))
    deletion, insertion = [clean], [base]
    for n in counts[1:-1]:
        keep = torch.cat([rank >= n, rank < n], 1)  # deletion keeps the rest, insertion the first n
        both = scores(lm, perturbed(pixels, baseline, keep, grid), reference.repeat_interleave(2 * m, 0))
        dele, ins = both.view(b, 2 * m).split(m, 1)
        deletion.append(dele)
        insertion.append(ins)
    deletion.append(base)
    insertion.append(clean)
    return torch.stack(deletion, -1), torch.stack(insertion, -1), counts.double() / p


# ---------------------------------------------------------------- boxes


def patch_box_overlap(boxes: np.ndarray, grid: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Return the share of each patch's area inside the box, (N, P), for boxes (N, 4) (x0, y0, x1, y1)
    in pixels of an image of `size` (height, width); rows of NaN boxes are NaN."""
    rows, cols = grid
    (height, width), boxes = size, np.asarray(boxes, dtype=np.float64)
    ys, xs = np.linspace(0, height, rows + 1), np.linspace(0, width, cols + 1)

    def cover(lo: np.ndarray, hi: np.ndarray, edges: np.ndarray) -> np.ndarray:
        inter = np.minimum(hi[:, None], edges[None, 1:]) - np.maximum(lo[:, None], edges[None, :-1])
        return np.clip(inter, 0, None) / np.diff(edges)[None]

    share = cover(boxes[:, 1], boxes[:, 3], ys)[:, :, None] * cover(boxes[:, 0], boxes[:, 2], xs)[:, None, :]
    return share.reshape(len(boxes), rows * cols)


def mass_in_box(maps: np.ndarray, overlap: np.ndarray) -> np.ndarray:
    """Return the share (N, M) of each non-negative map's mass (N, M, P) inside its image's box, from
    `patch_box_overlap` (N, P); NaN for an image without a box or an all-zero map."""
    maps = np.clip(np.asarray(maps, dtype=np.float64), 0, None)
    total = maps.sum(-1)
    inside = (maps * overlap[:, None]).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / total, np.nan)


def pointing_hits(
    maps: np.ndarray, boxes: np.ndarray, grid: tuple[int, int], size: tuple[int, int]
) -> np.ndarray:
    """Return 1.0 where the centre of the peak patch (first on ties) of maps (N, M, P) lies in the
    image's box (N, 4), else 0.0; NaN for an image without a box."""
    rows, cols = grid
    peak = np.asarray(maps).argmax(-1)
    y = (peak // cols + 0.5) * size[0] / rows
    x = (peak % cols + 0.5) * size[1] / cols
    b = np.asarray(boxes, dtype=np.float64)[:, None]
    hit = (x >= b[..., 0]) & (x < b[..., 2]) & (y >= b[..., 1]) & (y < b[..., 3])
    return np.where(np.isfinite(b).all(-1), hit.astype(np.float64), np.nan)


def box_share(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Return each box's (N, 4) share of the image's area (N,), NaN for no box."""
    b = np.asarray(boxes, dtype=np.float64)
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) / (size[0] * size[1])


# ---------------------------------------------------------------- reference maps


def random_maps(indices: np.ndarray, patches: int, seed: int) -> np.ndarray:
    """Return uniform random maps (B, P), one per image position in `indices` (B,), seeded by (seed, position)."""
    return np.stack([np.random.default_rng([seed, int(i)]).random(patches) for i in indices])


def centre_prior(grid: tuple[int, int]) -> np.ndarray:
    """Return a Gaussian bump (P,) on the grid centre, peak 1, sigma `CENTRE_SIGMA` of the shorter side."""
    rows, cols = grid
    y, x = np.meshgrid(np.arange(rows) - (rows - 1) / 2, np.arange(cols) - (cols - 1) / 2, indexing="ij")
    sigma = CENTRE_SIGMA * min(rows, cols)
    return np.exp(-(x**2 + y**2) / (2 * sigma**2)).ravel()


def method_names(layers: Sequence[int], rollout: bool, gradcam: bool) -> list[str]:
    """Names of the methods axis: `eigencam/<layer>` per layer, then rollout, Grad-CAM, random, centre."""
    named = [f"eigencam/{layer}" for layer in layers]
    return [*named, *(["rollout"] if rollout else []), *(["gradcam"] if gradcam else []), *BASELINES]


def stacked_maps(maps: BatchMaps, random: np.ndarray, grid: tuple[int, int]) -> torch.Tensor:
    """Every method's map of a batch, (B, M, P) in `method_names` order: Eigen-CAM's layers, the
    baselines present, then `random` (B, P) and the centre prior."""
    cam = maps.eigen.cam.flatten(-2).float()  # (B, L, P)
    others = [m.flatten(-2).float()[:, None] for m in (maps.rollout, maps.gradcam) if m is not None]
    chance = torch.as_tensor(random, dtype=cam.dtype, device=cam.device)[:, None]
    centre = torch.as_tensor(centre_prior(grid), dtype=cam.dtype, device=cam.device).expand_as(chance)
    return torch.cat([cam, *others, chance, centre], 1)


# ---------------------------------------------------------------- the eigencam job's share


def collect(
    chunks: dict[str, list[Any]],
    lm: LoadedModel,
    pixels: torch.Tensor,
    maps: BatchMaps,
    batch: Batch,
    params: EigenCamParams,
) -> None:
    """Append one batch's faithfulness arrays (numpy) to `chunks` under their result names."""
    found = batch_scores(lm, pixels, maps, batch, params.faithfulness_steps, params.random_seed)
    for name, value in found.items():
        chunks[name].append(value)


def batch_scores(
    lm: LoadedModel, pixels: torch.Tensor, maps: BatchMaps, batch: Batch, steps: int, seed: int
) -> dict[str, np.ndarray]:
    """Every method's scores for a batch, by result name: the curves (B, M, S), their AUCs (B, M),
    mass in box and pointing hits (B, M) and the box share (B,), NaN where an image has no box."""
    grid = lm.layout_for((pixels.shape[-2], pixels.shape[-1])).grid
    chance = random_maps(batch.indices, grid[0] * grid[1], seed)
    stack = stacked_maps(maps, chance, grid)
    reference = maps.logits.argmax(-1) if lm.classifier else maps.logits
    tiebreak = torch.as_tensor(chance, device=stack.device)[:, None]
    deletion, insertion, x = curves(lm, pixels, stack, reference, steps, tiebreak)
    found = {"deletion_curve": deletion.cpu().numpy(), "insertion_curve": insertion.cpu().numpy()}
    found["deletion_auc"] = auc(found["deletion_curve"], x.cpu())
    found["insertion_auc"] = auc(found["insertion_curve"], x.cpu())
    size, flat = (pixels.shape[-2], pixels.shape[-1]), stack.cpu().numpy()
    found["mass_in_box"] = mass_in_box(flat, patch_box_overlap(batch.boxes, grid, size))
    found["pointing_hit"] = pointing_hits(flat, batch.boxes, grid, size)
    found["box_share"] = box_share(batch.boxes, size)
    return found


def add_results(result: Any, arrays: Mapping[str, np.ndarray]) -> None:
    """Add the faithfulness arrays to `result` (an `AnalysisResult`); the box ones only if some image has a box."""
    for name in RESULTS:
        if name in arrays:
            result.add(name, arrays[name])
    if "box_share" in arrays and np.isfinite(arrays["box_share"]).any():
        for name in BOX_RESULTS:
            result.add(name, arrays[name])


def summary(lm: LoadedModel, settings: Settings, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The summary's faithfulness fields: method names, the curves' fractions of the patches,
    per-method means, the most faithful method."""
    if "deletion_auc" not in arrays:
        return {}
    names = method_names(settings.layers, settings.rollout, settings.gradcam_layer is not None)
    deletion, insertion = _nanmean(arrays["deletion_auc"]), _nanmean(arrays["insertion_auc"])
    steps, patches = int(arrays["deletion_curve"].shape[-1] - 1), lm.layout.n_patches
    out: dict[str, Any] = {
        "faithfulness_methods": names,
        "faithfulness_steps": steps,
        "curve_fractions": [float(v) for v in step_counts(patches, steps).double() / patches],
        "faithfulness_score": "class probability" if lm.classifier else "CLS embedding cosine",
        "deletion_auc_by_method": deletion,
        "insertion_auc_by_method": insertion,
        "most_faithful": most_faithful(names, deletion, insertion),
    }
    if "mass_in_box" in arrays:
        out["mass_in_box_by_method"] = _nanmean(arrays["mass_in_box"])
        out["pointing_by_method"] = _nanmean(arrays["pointing_hit"])
        out["box_share"] = _nanmean(arrays["box_share"][:, None])[0]
    return out


def most_faithful(
    names: Sequence[str], deletion: Sequence[float | None], insertion: Sequence[float | None]
) -> dict[str, Any] | None:
    """The method (not a reference map) with the largest insertion minus deletion AUC, with that gap."""
    gaps = {
        name: i - d
        for name, d, i in zip(names, deletion, insertion, strict=True)
        if name not in BASELINES and d is not None and i is not None
    }
    if not gaps:
        return None
    best = max(gaps, key=lambda name: gaps[name])
    return {"method": best, "insertion_minus_deletion": gaps[best]}


def sanity_readings(layers: Sequence[int], arrays: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Per method, the randomized-weights check as a number: the mean |Spearman| of trained against
    fully randomized maps, where it comes from, and whether it is below `SANITY_MAX_RANK_CORR`."""
    readings: dict[str, dict[str, Any]] = {}
    if "cascade_rank_corr" in arrays:
        full = _nanmean(np.abs(arrays["cascade_rank_corr"][:, -1]))  # every block randomized
        for layer, value in zip(layers, full, strict=True):
            readings[f"eigencam/{layer}"] = _reading(value, "cascade")
    for name in ("rollout", "gradcam"):
        if f"rank_corr_{name}" in arrays:
            value = _nanmean(np.abs(arrays[f"rank_corr_{name}"])[:, None])[0]
            readings[name] = _reading(value, "independent")
    return readings


def _reading(value: float | None, randomization: str) -> dict[str, Any]:
    passed = None if value is None else value < SANITY_MAX_RANK_CORR
    return {"rank_corr": value, "randomization": randomization, "passed": passed}


def _nanmean(x: np.ndarray) -> list[float | None]:
    """Column means (axis 0) ignoring NaN, None where a column has no finite value."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(np.asarray(x, dtype=np.float64), axis=0)
    return [float(v) if np.isfinite(v) else None for v in np.atleast_1d(mean)]
