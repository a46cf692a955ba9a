"""What the head-detail page draws, computed per selection: light work, about one forward each.

- `run` (kind `head-detail`): one image through the model with attention captured. Every head's
  (T, T) matrix (prefix tokens first, the paper's D4; a per-query map is one of its rows, D2), the
  histogram of its values (D5) and its strongest entries as bipartite links (D3), for every layer
  or one. One job serves every click on
  the image: heads, layers and query patches are slices of its arrays. The matrices are stored
  in float16 (a ViT-B/16 image at 224 px: 12 x 12 x 197^2 x 2 B = 11 MB); histograms and links come
  from the float32 matrices.
- `run_pruning` (kind `head-pruning`): one head of one image pruned partially in the six modes of
  `MODES` (the paper's B2-B3), all modes as one batch: the class probability and top-5 per mode,
  for a backbone the cosine of its final CLS embedding to the unpruned one.

Reading of the paper's D3: block l+1's head mixes the tokens that leave block l ("Target
Patches (l)", bottom axis) into the tokens that leave block l+1 ("Source Patches (l+1)",
top axis); a link i -> j of weight A[i, j] is query token i's attention to key token j in the
head's matrix. Links touching the CLS token (and other prefix tokens) are drawn on their own
colour scale ("CLS Attention Strength"), the rest on the patch scale. We keep the top
`bipartite_links` entries of the matrix, rows = query tokens, columns = key tokens (indices in
the full sequence, prefix tokens first), with that CLS/prefix flag.
"""

from __future__ import annotations

import hashlib
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from vitscope.contracts.errors import UserError
from vitscope.contracts.kinds.head_detail import HeadDetailParams
from vitscope.contracts.kinds.head_pruning import MODES, HeadPruningParams
from vitscope.vit.analysis.base import AnalysisResult, Progress, no_progress
from vitscope.vit.analysis.eigencam import top_k
from vitscope.vit.analysis.head_importance import labels_apply
from vitscope.vit.data.inputs import ImageSource, one_image
from vitscope.vit.models import LoadedModel, TokenLayout, intervene


@torch.no_grad()
def run(
    lm: LoadedModel, source: ImageSource, params: HeadDetailParams, progress: Progress = no_progress
) -> AnalysisResult:
    """Attention of every head of one image; arrays and summary as `vitscope.contracts.kinds.head_detail`
    declares them: `attention` (L, H, T, T) float16, `hist_counts` (L, H, bins), `hist_edges`
    (L, H, bins + 1), `links` (L, H, K, 4), `image` (h, w, 3) uint8, L being the layers kept."""
    layers = _layers(lm, params.layer)
    batch = one_image(source, params.image, lm.input_geometry)
    progress(0.1, f"image {params.image}: one forward with attention captured")
    kept: dict[int, torch.Tensor] = {}

    def sink(layer: int, probs: torch.Tensor) -> None:
        kept[layer] = probs[0].float().cpu()  # (H, T, T)

    with intervene(lm.parts, capture=layers, sink=sink):
        logits = lm.forward(lm.preprocess(batch.images))
    matrices = torch.stack([kept[layer] for layer in layers])  # (L, H, T, T)
    counts, edges = histograms(matrices, params.hist_bins)
    k = min(params.bipartite_links, matrices.shape[-1] ** 2)
    links = torch.stack(
        [
            torch.stack([bipartite_links(m, lm.layout.n_prefix, k) for m in per_layer])
            for per_layer in matrices
        ]
    )
    result = AnalysisResult()
    attention = matrices.numpy().astype(np.float16)
    result.add("attention", attention)
    result.add("hist_counts", counts)
    result.add("hist_edges", edges)
    result.add("links", links)
    result.add("image", batch.images[0])
    result.summary = {
        "image": params.image,
        "images": len(source),
        "layers": layers,
        "label": int(batch.labels[0]),
        **_predictions(lm, logits),
        "matrix_bytes": int(attention.nbytes),
    }
    return result


def bipartite_links(matrix: torch.Tensor, n_prefix: int, k: int) -> torch.Tensor:
    """The k strongest entries of a head's matrix (T, T): (k, 4) rows (query, key, weight, is_cls_link).

    Strongest first (ties in token order); is_cls_link is 1 when the query or the key is a
    prefix token (CLS, distillation, register), 0 for patch-to-patch links.
    """
    flat = matrix.flatten()
    k = min(k, flat.numel())
    if k == 0:
        return torch.zeros(0, 4)
    # the k-th largest value bounds the links; of the entries at or above it (more than k where it
    # ties), a stable sort keeps token order: the first k of a stable sort of the whole matrix
    floor = torch.topk(flat, k, sorted=False).values.min()
    candidates = (flat >= floor).nonzero().squeeze(1)
    order = candidates[torch.sort(flat[candidates], descending=True, stable=True).indices[:k]]
    query, key = order // matrix.shape[1], order % matrix.shape[1]
    is_cls = (query < n_prefix) | (key < n_prefix)
    return torch.stack([query.float(), key.float(), flat[order], is_cls.float()], dim=1)


def _layers(lm: LoadedModel, layer: int | None) -> list[int]:
    if layer is None:
        return list(range(lm.num_layers))
    if layer >= lm.num_layers:
        raise UserError(f"layer {layer} is out of range: the model has layers 0..{lm.num_layers - 1}")
    return [layer]


def histograms(matrices: torch.Tensor, bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-head histograms of attention values, matrices (..., T, T) -> counts (..., bins) and edges
    (..., bins + 1) from 0 to the head's largest value (as `numpy.histogram` bins them: the last bin
    holds its right edge)."""
    flat = matrices.flatten(-2)
    top = flat.amax(-1).clamp_min(1e-12)
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64) * top[..., None].double()
    bin_of = torch.searchsorted(edges.to(flat.dtype), flat.contiguous(), right=True) - 1  # [a, b) as numpy
    position = bin_of.clamp(0, bins - 1)
    counts = torch.zeros(*flat.shape[:-1], bins, dtype=torch.int64)
    counts.scatter_add_(-1, position, torch.ones_like(position))
    return counts, edges.float()


def _predictions(lm: LoadedModel, output: torch.Tensor) -> dict[str, object]:
    """Top-1 and top-5 of a classifier's logits (1, C); nothing for a backbone's embedding."""
    if not lm.classifier:
        return {"prediction": None, "top5": []}
    idx, prob = top_k(output)
    top5 = [
        {"index": int(i), "label": lm.labels[int(i)] if int(i) < len(lm.labels) else None, "prob": float(p)}
        for i, p in zip(idx[0], prob[0], strict=True)
    ]
    return {"prediction": int(idx[0, 0]), "top5": top5}


# ---------------------------------------------------------------- partial pruning


def partial_masks(layout: TokenLayout, n_heads: int, head: int) -> torch.Tensor:
    """Attention multipliers (modes, H, T, T) of each partial-pruning mode in `MODES` for one head.

    CLS row: what CLS attends to; CLS column: what attends to CLS; patch-to-patch: patch queries
    over patch keys (other prefix tokens, such as registers, keep their rows and columns).
    """
    masks = torch.ones(len(MODES), n_heads, layout.n_tokens, layout.n_tokens)
    cls, patch = layout.cls_index, layout.patches(torch.arange(layout.n_tokens), 0)
    for mode, mask in zip(MODES, masks[:, head], strict=True):
        if mode in ("cls_row", "cls_row_column"):
            mask[cls, :] = 0
        if mode in ("cls_column", "cls_row_column"):
            mask[:, cls] = 0
        if mode == "patch_to_patch":
            mask[patch[:, None], patch[None, :]] = 0
        if mode == "whole_head":
            mask.zero_()
    return masks


CLEAN_PASS_BYTES = 256 * 2**20
"""What the clean passes kept per model may hold (a ViT-B/16 image at 224 px: 7.3 MB)."""

_CLEAN_PASSES: weakref.WeakKeyDictionary[nn.Module, OrderedDict[tuple[Any, ...], CleanPass]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class CleanPass:
    """The unpruned pass of some pixels: what `forward` returns, and the residual stream entering
    every layer (I, T, D)."""

    output: torch.Tensor
    residuals: tuple[torch.Tensor, ...]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.output, *self.residuals))


@torch.no_grad()
def clean_pass(lm: LoadedModel, pixels: torch.Tensor) -> CleanPass:
    """The clean pass of `pixels` through `lm`, kept per model for the images clicked last.

    Clicking through the heads of one image prunes one head after another on the same pixels; the
    clean pass they all resume from is computed once (LRU by pixel content, `CLEAN_PASS_BYTES` per
    model), so a click costs only its pruned copies. Only this function fills the store, so a kept
    pass is bit for bit the one a fresh pass would give.
    """
    array = pixels.detach().cpu().contiguous().numpy()
    key = (lm.dtype, array.shape, hashlib.sha256(array.tobytes()).hexdigest())
    kept = _CLEAN_PASSES.setdefault(lm.model, OrderedDict())
    if key in kept:
        kept.move_to_end(key)
        return kept[key]
    with intervene(lm.parts, record_residuals=True) as rec:
        output = lm.forward(pixels)
    found = CleanPass(output, tuple(rec.residuals[layer] for layer in range(lm.num_layers)))
    kept[key] = found
    while sum(p.nbytes for p in kept.values()) > CLEAN_PASS_BYTES and len(kept) > 1:
        kept.popitem(last=False)
    if found.nbytes > CLEAN_PASS_BYTES:
        kept.pop(key)
    return found


@torch.no_grad()
def partial_pruning(
    lm: LoadedModel, pixels: torch.Tensor, labels: torch.Tensor, layer: int, head: int
) -> dict[str, torch.Tensor]:
    """Prune one head partially in every mode, all modes x images as one batch.

    pixels (I, 3, h, w), labels (I,) with -1 where an image's label is not a class of the model. A
    classifier gives `target` (I,), the label or else the clean pass's top-1, `target_prob` and
    `top5_idx`, `top5_prob` (modes, I, k); a backbone `cls_cosine` (modes, I), the cosine of each
    pruned final CLS embedding to the clean one. Pruning a head of `layer` changes nothing before it,
    so the pruned passes resume from the clean pass's residual stream entering `layer`; the first
    mode, `none`, is the clean pass itself (no pass of its own, and the target comes from it).
    """
    modes, n = len(MODES), pixels.shape[0]
    size = (pixels.shape[-2], pixels.shape[-1])
    scale = partial_masks(lm.layout_for(size), lm.num_heads, head)[1:]  # `none` scales nothing
    scale = scale.to(pixels.device).repeat_interleave(n, 0)  # mode-major, like the stream repeated below
    found = clean_pass(lm, pixels)
    clean, stream = found.output, found.residuals[layer].repeat(modes - 1, 1, 1)
    pruned = lm.resume(layer, stream, size, features=not lm.classifier, attn_scale={layer: scale})
    if not lm.classifier:
        cls = torch.cat([clean, pruned[:, lm.layout.cls_index]]).float().view(modes, n, -1)
        return {"cls_cosine": torch.nn.functional.cosine_similarity(cls, clean.float()[None], dim=-1)}
    probs = torch.cat([clean, pruned]).float().softmax(-1).view(modes, n, -1)
    labels = labels.to(pixels.device)
    known = (labels >= 0) & (labels < probs.shape[-1])
    target = torch.where(known, labels, probs[0].argmax(-1))
    top = probs.topk(min(5, probs.shape[-1]), dim=-1)
    return {
        "target": target,
        "target_prob": probs.gather(-1, target.expand(modes, n)[..., None])[..., 0],
        "top5_idx": top.indices,
        "top5_prob": top.values,
    }


def run_pruning(
    lm: LoadedModel, source: ImageSource, params: HeadPruningParams, progress: Progress = no_progress
) -> AnalysisResult:
    """One head of one image pruned in every mode; arrays and summary as
    `vitscope.contracts.kinds.head_pruning` declares them (the modes axis first)."""
    for name, value, bound in (("layer", params.layer, lm.num_layers), ("head", params.head, lm.num_heads)):
        if value >= bound:
            raise UserError(f"{name} {value} is out of range: the model has {name}s 0..{bound - 1}")
    batch = one_image(source, params.image, lm.input_geometry)
    progress(0.1, f"pruning L{params.layer} H{params.head} of image {params.image} in {len(MODES)} modes")
    pixels = lm.preprocess(batch.images)
    label = int(batch.labels[0]) if labels_apply(lm, source) else -1
    arrays = partial_pruning(lm, pixels, torch.tensor([label]), params.layer, params.head)
    target = arrays.pop("target", None)
    result = AnalysisResult()
    for name, array in arrays.items():
        result.add(name, array[:, 0])
    left_out = (
        {
            "cls_cosine": "a classifier's pruned passes end in its class scores; the CLS cosine is for backbones"
        }
        if lm.classifier
        else {
            name: "the model is a backbone without a classifier: there are no class scores"
            for name in ("target_prob", "top5_idx", "top5_prob")
        }
    )
    result.summary = {
        "image": params.image,
        "layer": params.layer,
        "head": params.head,
        "modes": list(MODES),
        "label": int(batch.labels[0]),
        "target": None if target is None else int(target[0]),
        "left_out": left_out,
    }
    return result
