"""Head importance by pruning: exact single-head ablation, partial pruning, Taylor estimate.

For every head h (layer l), over a dataset (Li et al., TVCG 2023, §5.2):
- exact ablation (head output gated to 0): top-1 accuracy drop, drop of the target-class
  probability, loss change (cross-entropy against the target), and layer impact
  ||Z_l(x) - Z_l(x; h=0)|| / ||Z_l(x)|| of the ablated layer's block output. The target is
  the label where known, else the clean prediction (then "accuracy" is agreement with it);
- partial pruning of one head in six modes (`MODES`), top-5 predictions under each;
- the gradient (Taylor) estimate of Michel et al. (2019): E_x |dL(x)/d gate_h| with one gate
  per image, normalised per layer by the L2 norm over the layer's heads, and its Spearman
  correlation with the exact ranking.

Speed comes from the schedule, not from more passes: one clean float32 pass per batch
records the residual stream entering every block (and, with gates requiring grad, gives
the Taylor gradients from one backward pass). Ablating a head of layer l cannot change
anything before l, so every ablated run resumes from the cached stream at l, with the
image x head copies folded into the batch and a per-copy gate zeroing one head:
sum_l (L - l) blocks per head instead of L, in large batches. With `dtype="bfloat16"` the
resumed passes run on a cast copy; copies whose top-1 decision is within the bfloat16 error
of a tie are re-run in float32, so accuracy drops are float32's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import torch
from scipy.stats import spearmanr

from vitscope.contracts.errors import UserError
from vitscope.contracts.kinds.head_importance import HeadImportanceParams
from vitscope.vit.analysis.base import AnalysisResult, Progress, no_progress, require_images, stream
from vitscope.vit.analysis.precision import model_in
from vitscope.vit.data.inputs import ImageSource, SynthSource
from vitscope.vit.models import LoadedModel, TokenLayout, intervene

log = logging.getLogger(__name__)

MODES = ("none", "cls_row", "cls_column", "patch_to_patch", "cls_row_column", "whole_head")
"""Partial-pruning modes: which block of one head's attention matrix is zeroed."""

RECHECK_FACTOR = 4.0
"""A copy is re-run in float32 when its target-vs-best-other logit margin is below this many
times the largest bfloat16-vs-float32 logit error of the batch's clean pass (a margin is a
difference of two logits, each off by up to that error, and the resumed copies see new inputs)."""


@dataclass
class AblationStats:
    """Per-image results of single-head ablation (N images, L layers, H heads).

    `target` (N,) long: label, else clean prediction; `prob_base`, `loss_base` (N,) float and
    `correct_base` (N,) bool of the clean model; `prob_after`, `loss_after` (N, L, H) float,
    `correct_after` (N, L, H) bool and `impact` (N, L, H) layer impact with each head ablated.
    """

    target: torch.Tensor
    prob_base: torch.Tensor
    loss_base: torch.Tensor
    correct_base: torch.Tensor
    prob_after: torch.Tensor
    loss_after: torch.Tensor
    correct_after: torch.Tensor
    impact: torch.Tensor

    @staticmethod
    def cat(parts: Sequence[AblationStats]) -> AblationStats:
        """Concatenate per-batch stats along the image axis."""
        return AblationStats(*(torch.cat([getattr(p, f.name) for p in parts]) for f in fields(AblationStats)))

    def per_head(self) -> dict[str, torch.Tensor]:
        """Dataset means per head, each (L, H): accuracy_drop, prob_drop, loss_change, layer_impact."""
        return {
            "accuracy_drop": self.correct_base.float().mean() - self.correct_after.float().mean(0),
            "prob_drop": (self.prob_base[:, None, None] - self.prob_after).mean(0),
            "loss_change": (self.loss_after - self.loss_base[:, None, None]).mean(0),
            "layer_impact": self.impact.mean(0),
        }


@dataclass
class Scores:
    """Per-copy outcomes of a forward pass: (n,) each; `margin` = target logit - best other logit."""

    prob: torch.Tensor
    loss: torch.Tensor
    correct: torch.Tensor
    margin: torch.Tensor


def score(logits: torch.Tensor, target: torch.Tensor) -> Scores:
    """Target probability, cross-entropy, top-1 correctness and decision margin of logits (n, C)."""
    logits = logits.float()
    t = target[:, None]
    logp = logits.log_softmax(-1).gather(-1, t)[:, 0]
    other = logits.scatter(-1, t, -math.inf).amax(-1)
    margin = logits.gather(-1, t)[:, 0] - other
    return Scores(logp.exp(), -logp, logits.argmax(-1) == target, margin)


@dataclass
class CleanPass:
    """One batch's unablated float32 pass.

    `logits` (B, C); `target` (B,); `residuals[l]` the stream entering block l and `outputs[l]`
    block l's output, each (B, T, D); `taylor` (B, L, H) |dL/d gate| per image, or None.
    """

    logits: torch.Tensor
    target: torch.Tensor
    residuals: list[torch.Tensor]
    outputs: list[torch.Tensor]
    taylor: torch.Tensor | None


def clean_pass(lm: LoadedModel, pixels: torch.Tensor, labels: torch.Tensor, taylor: bool) -> CleanPass:
    """Run the unablated model on pixels (B, 3, h, w); labels (B,) with -1 = unknown (target = prediction).

    With `taylor`, every image gets its own gates (B, L, H) of ones requiring grad and the summed
    per-image losses are differentiated once: each image's gradient lands on its own gates.
    """
    shape = (pixels.shape[0], lm.num_layers, lm.num_heads)
    gates = torch.ones(shape, device=pixels.device, requires_grad=True) if taylor else None
    every = range(lm.num_layers)
    with (
        torch.set_grad_enabled(taylor),
        intervene(lm.parts, head_gates=gates, record_residuals=True, record_outputs=every) as rec,
    ):
        logits = lm.forward(pixels).float()
    target = torch.where(labels >= 0, labels, logits.detach().argmax(-1))
    grads = None
    if gates is not None:
        loss = torch.nn.functional.cross_entropy(logits, target, reduction="sum")
        grads = torch.autograd.grad(loss, gates)[0].abs()
    residuals = [rec.residuals[layer].detach() for layer in every]
    outputs = [rec.outputs[layer].detach() for layer in every]
    return CleanPass(logits.detach(), target, residuals, outputs, grads)


@torch.no_grad()
def ablate_pairs(
    lm: LoadedModel, layer: int, clean: CleanPass, samples: torch.Tensor, heads: torch.Tensor
) -> tuple[Scores, torch.Tensor]:
    """Ablate head heads[i] of `layer` on image samples[i], resuming at `layer`; return (Scores, impact (n,)).

    The copies run as one batch in `lm`'s dtype, each with its own gates (n, L, H).
    """
    n = samples.numel()
    gates = torch.ones(n, lm.num_layers, lm.num_heads, device=samples.device)
    gates[torch.arange(n, device=samples.device), layer, heads] = 0
    hidden = clean.residuals[layer][samples].to(lm.dtype)
    with intervene(lm.parts, start=(layer, hidden), head_gates=gates, record_outputs=[layer]) as rec:
        logits = lm.forward(lm.blank_pixels(n))
    ref = clean.outputs[layer][samples].float().flatten(1)
    impact = (rec.outputs[layer].float().flatten(1) - ref).norm(dim=-1) / ref.norm(dim=-1)
    return score(logits, clean.target[samples]), impact


class _Grid:
    """Per-image ablation outcomes of one batch being filled in: (B, L, H) each."""

    def __init__(self, shape: tuple[int, int, int], device: torch.device) -> None:
        self.prob = torch.empty(shape, device=device)
        self.loss = torch.empty(shape, device=device)
        self.impact = torch.empty(shape, device=device)
        self.margin = torch.empty(shape, device=device)
        self.correct = torch.empty(shape, dtype=torch.bool, device=device)

    def fill(
        self, layer: int, samples: torch.Tensor, heads: torch.Tensor, s: Scores, impact: torch.Tensor
    ) -> None:
        """Store the outcomes of the copies (samples[i], layer, heads[i])."""
        at = (samples, torch.full_like(samples, layer), heads)
        self.prob[at], self.loss[at], self.correct[at], self.margin[at] = s.prob, s.loss, s.correct, s.margin
        self.impact[at] = impact


def _chunks(
    samples: torch.Tensor, heads: torch.Tensor, size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, samples.numel(), size):
        yield samples[start : start + size], heads[start : start + size]


def _all_pairs(batch: int, n_heads: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(image, head) index pairs for every head of a layer, head-major: two (B * H,) tensors."""
    samples = torch.arange(batch, device=device).repeat(n_heads)
    heads = torch.arange(n_heads, device=device).repeat_interleave(batch)
    return samples, heads


def ablate_batch(
    lm: LoadedModel, fast: LoadedModel, clean: CleanPass, chunk_size: int, recheck: bool = True
) -> tuple[AblationStats, int]:
    """Ablate every head on one batch, resumed passes in `fast`'s dtype; return (stats, copies re-checked).

    `fast` is `lm` itself or a lower-precision copy; near-tie copies are re-run on `lm` when `recheck`.
    """
    batch = clean.logits.shape[0]
    grid = _Grid((batch, lm.num_layers, lm.num_heads), clean.logits.device)
    pairs = _all_pairs(batch, lm.num_heads, clean.logits.device)
    for layer in range(lm.num_layers):
        for samples, heads in _chunks(*pairs, chunk_size):
            grid.fill(layer, samples, heads, *ablate_pairs(fast, layer, clean, samples, heads))
    rechecked = _recheck(lm, fast, clean, grid, chunk_size) if recheck and fast is not lm else 0
    return _stats(clean, grid), rechecked


def _recheck(lm: LoadedModel, fast: LoadedModel, clean: CleanPass, grid: _Grid, chunk_size: int) -> int:
    """Re-run in float32 the copies whose decision margin is within the low-precision error; return how many."""
    near = grid.margin.abs() <= RECHECK_FACTOR * _clean_error(fast, clean)
    for layer in range(lm.num_layers):
        samples, heads = near[:, layer].nonzero(as_tuple=True)
        for s, h in _chunks(samples, heads, chunk_size):
            grid.fill(layer, s, h, *ablate_pairs(lm, layer, clean, s, h))
    return int(near.sum())


@torch.no_grad()
def _clean_error(fast: LoadedModel, clean: CleanPass) -> torch.Tensor:
    """Largest |logit| difference between `fast` and float32 on the clean batch, resumed at block 0."""
    with intervene(fast.parts, start=(0, clean.residuals[0].to(fast.dtype))):
        logits = fast.forward(fast.blank_pixels(clean.logits.shape[0]))
    return (logits.float() - clean.logits).abs().max()


@torch.no_grad()
def naive_ablation(lm: LoadedModel, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> AblationStats:
    """Reference: per head, one full float32 forward over every batch with gates (1, L, H) masking it.

    `batches` holds (pixels (B, 3, h, w), labels (B,) with -1 = unknown); returns the stats the
    fast path returns, computed without resuming, folding or re-checking.
    """
    cleans = [clean_pass(lm, pixels, labels, taylor=False) for pixels, labels in batches]
    grids = [_Grid((c.logits.shape[0], lm.num_layers, lm.num_heads), c.logits.device) for c in cleans]
    for layer in range(lm.num_layers):
        for head in range(lm.num_heads):
            gates = torch.ones(1, lm.num_layers, lm.num_heads, device=lm.device)
            gates[0, layer, head] = 0
            for (pixels, _), clean, grid in zip(batches, cleans, grids, strict=True):
                with intervene(lm.parts, head_gates=gates, record_outputs=[layer]) as rec:
                    logits = lm.forward(pixels)
                ref = clean.outputs[layer].flatten(1)
                impact = (rec.outputs[layer].flatten(1) - ref).norm(dim=-1) / ref.norm(dim=-1)
                samples = torch.arange(pixels.shape[0], device=pixels.device)
                grid.fill(layer, samples, torch.full_like(samples, head), score(logits, clean.target), impact)
    return AblationStats.cat([_stats(c, g) for c, g in zip(cleans, grids, strict=True)])


def _stats(clean: CleanPass, grid: _Grid) -> AblationStats:
    base = score(clean.logits, clean.target)
    return AblationStats(
        clean.target, base.prob, base.loss, base.correct, grid.prob, grid.loss, grid.correct, grid.impact
    )


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


@torch.no_grad()
def partial_pruning(
    lm: LoadedModel, pixels: torch.Tensor, target: torch.Tensor, layer: int, head: int
) -> dict[str, torch.Tensor]:
    """Prune one head partially in every mode, all modes x images as one batch.

    pixels (I, 3, h, w), target (I,); returns `partial_top5_idx`, `partial_top5_prob` (modes, I, 5)
    and `partial_target_prob` (modes, I).
    """
    modes, n = len(MODES), pixels.shape[0]
    scale = partial_masks(lm.layout_for((pixels.shape[-2], pixels.shape[-1])), lm.num_heads, head)
    scale = scale.to(pixels.device).repeat_interleave(n, 0)  # mode-major, like pixels.repeat below
    with intervene(lm.parts, attn_scale={layer: scale}):
        logits = lm.forward(pixels.repeat(modes, 1, 1, 1))
    probs = logits.float().softmax(-1).view(modes, n, -1)
    top = probs.topk(min(5, probs.shape[-1]), dim=-1)
    target_prob = probs.gather(-1, target.expand(modes, n)[..., None])[..., 0]
    return {
        "partial_top5_idx": top.indices,
        "partial_top5_prob": top.values,
        "partial_target_prob": target_prob,
    }


def taylor_importance(abs_grads: torch.Tensor, images: int) -> tuple[torch.Tensor, torch.Tensor]:
    """From summed per-image |dL/d gate| (L, H): (mean over images, the same normalised per layer), each (L, H).

    The per-layer L2 normalisation is Michel et al.'s: heads compare within a layer.
    """
    raw = abs_grads / images
    return raw, raw / raw.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(raw.dtype).tiny)


def spearman(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """Spearman rank correlation of two same-shaped tensors (ties averaged); None when undefined."""
    x, y = a.flatten().cpu().numpy(), b.flatten().cpu().numpy()
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return None  # a constant ranking (e.g. no head changes any decision) correlates with nothing
    rho = spearmanr(x, y).statistic
    return float(rho) if np.isfinite(rho) else None


def labels_apply(lm: LoadedModel, source: ImageSource) -> bool:
    """Whether the source's labels are indices of the model's classes.

    SynthScenes labels are SynthScenes categories: they mean something only to a model whose
    classes are those categories (the demo and random models); uploads are labelled by the
    model's own class indices.
    """
    if isinstance(source, SynthSource):
        from vitscope.vit.data.synthscenes import CATEGORIES

        return tuple(lm.labels) == tuple(CATEGORIES)
    return True


def _labels(raw: np.ndarray, use: bool, lm: LoadedModel) -> torch.Tensor:
    """Labels (B,) on the model's device, -1 where unknown or not applicable."""
    labels = torch.as_tensor(raw, dtype=torch.long, device=lm.device)
    if not use:
        return torch.full_like(labels, -1)
    if int(labels.max()) >= len(lm.labels):
        raise UserError(f"label {int(labels.max())} is not a class of the model ({len(lm.labels)} classes)")
    return labels


def _check(lm: LoadedModel, source: ImageSource, params: HeadImportanceParams) -> None:
    """Refuse parameters that do not fit the model or the dataset, before any work."""
    require_images(source)
    if params.partial_layer is not None and params.partial_layer >= lm.num_layers:
        raise UserError(f"partial_layer {params.partial_layer}: the model has layers 0..{lm.num_layers - 1}")
    if params.partial_head is not None and params.partial_head >= lm.num_heads:
        raise UserError(f"partial_head {params.partial_head}: the model has heads 0..{lm.num_heads - 1}")
    if params.partial_head is not None and params.partial_layer is None:
        raise UserError("partial_head needs partial_layer too")
    bad = [i for i in params.partial_images if i >= len(source)]
    if bad:
        raise UserError(f"partial_images {bad}: the dataset has images 0..{len(source) - 1}")


@dataclass
class _Collected:
    """What the batch loop keeps: per-batch stats, labels and predictions (B,), summed |grad| (L, H),
    the partial-pruning images by dataset index (pixels (3, h, w), target ()), re-checked copies."""

    wanted: frozenset[int]
    stats: list[AblationStats] = field(default_factory=list)
    labels: list[torch.Tensor] = field(default_factory=list)
    predictions: list[torch.Tensor] = field(default_factory=list)
    taylor: torch.Tensor | None = None
    picked: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    rechecked: int = 0

    def add(
        self,
        indices: np.ndarray,
        pixels: torch.Tensor,
        clean: CleanPass,
        labels: torch.Tensor,
        ablated: tuple[AblationStats, int],
    ) -> None:
        """Keep one batch's results; copy out its images that partial pruning wants."""
        self.stats.append(ablated[0])
        self.rechecked += ablated[1]
        self.labels.append(labels)
        self.predictions.append(clean.logits.argmax(-1))
        if clean.taylor is not None:
            summed = clean.taylor.sum(0)
            self.taylor = summed if self.taylor is None else self.taylor + summed
        for row, index in enumerate(indices.tolist()):
            if index in self.wanted:
                self.picked[index] = (pixels[row].clone(), clean.target[row])  # not a view of the batch


def run(
    lm: LoadedModel, source: ImageSource, params: HeadImportanceParams, progress: Progress = no_progress
) -> AnalysisResult:
    """Head importance over `source`; returns the arrays and summary named in docs/CONTRACTS.md.

    Arrays: accuracy_drop, prob_drop, loss_change, layer_impact, taylor, taylor_raw (L, H);
    prob_after (N, L, H); prob_base, labels, predictions (N,); partial_top5_idx,
    partial_top5_prob (modes, I, 5); partial_target_prob (modes, I).
    """
    _check(lm, source, params)
    fast = model_in(lm, params.dtype)
    use_labels = labels_apply(lm, source)
    if not use_labels:
        log.info("the dataset's labels are not classes of %s: scoring against its predictions", lm.spec)
    col = _Collected(frozenset(params.partial_images))
    label = "ablated every head"
    for batch in stream(source, params.batch_size, lm.input_geometry, progress, label, (0.0, 0.98)):
        pixels = lm.preprocess(batch.images)
        labels = _labels(batch.labels, use_labels, lm)
        clean = clean_pass(lm, pixels, labels, params.taylor)
        ablated = ablate_batch(lm, fast, clean, params.chunk_size, params.recheck)
        col.add(batch.indices, pixels, clean, labels, ablated)
    return _assemble(lm, col, params)


def _assemble(lm: LoadedModel, col: _Collected, params: HeadImportanceParams) -> AnalysisResult:
    """Turn the collected per-batch tensors into the result arrays and the JSON summary."""
    stats = AblationStats.cat(col.stats)
    labels = torch.cat(col.labels)
    result = AnalysisResult()
    per_head = stats.per_head()
    for name, value in per_head.items():
        result.add(name, value)
    result.add("prob_after", stats.prob_after)
    result.add("prob_base", stats.prob_base)
    result.add("labels", labels)
    result.add("predictions", torch.cat(col.predictions))
    labelled = labels >= 0
    result.summary = {
        "images": len(labels),
        "labelled": int(labelled.sum()),
        "accuracy": float(stats.correct_base[labelled].float().mean()) if labelled.any() else None,
        "accuracy_drop": per_head["accuracy_drop"].tolist(),
        "label_names": list(lm.labels),
        "dtype": params.dtype,
        "rechecked": col.rechecked,
        **_taylor_results(result, col, per_head),
        **_partial_results(lm, result, col, params, per_head["prob_drop"]),
    }
    return result


def _taylor_results(result: AnalysisResult, col: _Collected, per_head: dict[str, torch.Tensor]) -> dict:
    """Add `taylor`, `taylor_raw` (L, H); return the summary's Spearman correlations with the exact metrics."""
    if col.taylor is None:
        return {"spearman": None, "spearman_detail": {}}
    raw, normalised = taylor_importance(col.taylor, sum(len(s.target) for s in col.stats))
    result.add("taylor", normalised)
    result.add("taylor_raw", raw)
    detail = {
        f"{metric}{suffix}": spearman(estimate, per_head[metric])
        for metric in ("loss_change", "prob_drop", "accuracy_drop")
        for suffix, estimate in (("", normalised), ("_raw", raw))
    }
    return {"spearman": detail["loss_change"], "spearman_detail": detail}


def _partial_results(
    lm: LoadedModel,
    result: AnalysisResult,
    col: _Collected,
    params: HeadImportanceParams,
    prob_drop: torch.Tensor,
) -> dict:
    """Prune the chosen head partially on the picked images; add the partial_* arrays, return the summary keys."""
    layer = params.partial_layer
    if layer is None:
        layer = int(prob_drop.flatten().argmax()) // lm.num_heads
    head = params.partial_head if params.partial_head is not None else int(prob_drop[layer].argmax())
    chosen = [col.picked[i] for i in params.partial_images]
    if chosen:
        pixels = torch.stack([p for p, _ in chosen])
        target = torch.stack([t for _, t in chosen])
        for name, value in partial_pruning(lm, pixels, target, layer, head).items():
            result.add(name, value)
    return {
        "modes": list(MODES),
        "partial_layer": layer,
        "partial_head": head,
        "partial_images": list(params.partial_images),
    }
