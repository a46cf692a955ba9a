"""Head importance by pruning: exact single-head ablation and a Taylor estimate, over a dataset.

For every head h (layer l), over a dataset (Li et al., TVCG 2023, §5.2), what is measured depends
on what the model is (`objective` in the summary):

- a classifier (`"classifier"`), or a backbone with labelled images, scored through a linear probe
  fitted on its CLS embeddings (`"probe"`, `vitscope.vit.analysis.probe`): exact ablation (head
  output gated to 0) gives the top-1 accuracy drop, the drop of the target-class probability and
  the loss change (cross-entropy against the target). The target is the label where known, else
  the clean prediction (then "accuracy" is agreement with it). The Taylor estimate is Michel et al.'s (2019) E_x |dL(x)/d gate_h|, normalised per
  layer by the L2 norm over the layer's heads;
- a backbone (`"task-free"`, and alongside the probe's metrics): exact ablation gives the CLS
  cosine drop, 1 - cos(e(x; h=0), e(x)) of the final CLS embedding e, and the patch change
  ||F(x; h=0) - F(x)||_F / ||F(x)||_F of the final patch features F. The Taylor estimate is
  `embedding_taylor`'s;
- always: the layer impact ||Z_l(x) - Z_l(x; h=0)|| / ||Z_l(x)|| of the ablated layer's output.

Nothing here depends on which head a user looks at: partial pruning of one head on one image is
the light `head-pruning` kind (`vitscope.vit.analysis.head_detail`).

Speed comes from the schedule, not from more passes: one clean float32 pass per batch
records the residual stream entering every block (and, with gates requiring grad, gives
the Taylor gradients from backward passes of that one graph). Ablating a head of layer l cannot
change anything before l, so every ablated run resumes from the cached stream at l, with the
image x head copies folded into the batch and a per-copy gate zeroing one head:
sum_l (L - l) blocks per head instead of L, in large batches. Two exact cuts make those blocks
cheaper. Zeroing head h of layer l changes the attention module's output only by head h's share,
context_h @ W_O[h] (`output_maps`), so the clean pass also records each layer's per-head context and
attention output, and a copy resumes inside block l after its attention: attention output minus
that rank-d_head term, then the block's MLP (no Q/K/V, attention or output projection at l). And a
classifier whose logits read only prefix tokens (`readout_rows`: ViT's CLS, distilled DeiT's CLS and
distillation tokens) needs no other row of the last block, so copies ablated before it compute the
last block's keys and values for every token but the rest of it for those rows only
(`intervene(last_rows=...)`); copies ablated at the last layer run it whole (its output is the
layer impact's). With `dtype="bfloat16"` the
resumed passes run on a cast copy; copies whose top-1 decision is within the bfloat16 error
of a tie are re-run in float32 (on CUDA through TF32 first, and in full float32 only where
still within TF32's error of a tie), so accuracy drops are float32's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from vitscope.contracts.errors import UserError
from vitscope.contracts.kinds.head_importance import HeadImportanceParams
from vitscope.vit.analysis.base import AnalysisResult, Progress, no_progress, require_images, stream
from vitscope.vit.analysis.precision import model_in, tf32
from vitscope.vit.analysis.probe import ProbeFit, probe_on
from vitscope.vit.data.inputs import ImageSource, SynthSource
from vitscope.vit.models import LoadedModel, TokenLayout, intervene
from vitscope.vit.models.hooks import output_map
from vitscope.vit.models.probe import probe_head, with_probe

log = logging.getLogger(__name__)

RECHECK_FACTOR = 4.0
"""A copy is re-run in float32 when its target-vs-best-other logit margin is below this many
times the largest bfloat16-vs-float32 logit error of the batch's clean pass (a margin is a
difference of two logits, each off by up to that error, and the resumed copies see new inputs)."""

TAYLOR_PROBES = 4
"""Random vectors per image of the task-free Taylor estimate (one backward pass each)."""

CLASS_METRICS = ("accuracy_drop", "prob_drop", "loss_change", "taylor")
EMBEDDING_METRICS = ("cls_cosine_drop", "patch_change", "embedding_taylor")
PER_HEAD = (*CLASS_METRICS[:3], "layer_impact", CLASS_METRICS[3], *EMBEDDING_METRICS)
"""The per-head (L, H) metrics a result may carry, in the summary's order."""


@dataclass
class AblationStats:
    """Per-image results of single-head ablation (N images, L layers, H heads).

    `impact` (N, L, H) layer impact with each head ablated. With a class head: `target` (N,) long
    (label, else clean prediction); `prob_base`, `loss_base` (N,) float and `correct_base` (N,) bool
    of the clean model; `prob_after`, `loss_after` (N, L, H) float and `correct_after` (N, L, H)
    bool. For a backbone: `cos_after` (N, L, H) cosine of the ablated CLS embedding to the clean
    one and `patch_after` (N, L, H) the relative change of the final patch features.
    """

    impact: torch.Tensor
    target: torch.Tensor | None = None
    prob_base: torch.Tensor | None = None
    loss_base: torch.Tensor | None = None
    correct_base: torch.Tensor | None = None
    prob_after: torch.Tensor | None = None
    loss_after: torch.Tensor | None = None
    correct_after: torch.Tensor | None = None
    cos_after: torch.Tensor | None = None
    patch_after: torch.Tensor | None = None

    @staticmethod
    def cat(parts: Sequence[AblationStats]) -> AblationStats:
        """Concatenate per-batch stats along the image axis (a field absent from the parts stays None)."""
        optional = {}
        for f in fields(AblationStats)[1:]:
            values = [getattr(p, f.name) for p in parts]
            optional[f.name] = None if values[0] is None else torch.cat(values)
        return AblationStats(torch.cat([p.impact for p in parts]), **optional)

    def per_head(self) -> dict[str, torch.Tensor]:
        """Dataset means per head, each (L, H): accuracy_drop, prob_drop, loss_change (with a class head),
        layer_impact, cls_cosine_drop and patch_change (for a backbone)."""
        out = {}
        if self.correct_after is not None:
            assert self.correct_base is not None and self.prob_base is not None and self.loss_base is not None
            assert self.prob_after is not None and self.loss_after is not None
            out["accuracy_drop"] = self.correct_base.float().mean() - self.correct_after.float().mean(0)
            out["prob_drop"] = (self.prob_base[:, None, None] - self.prob_after).mean(0)
            out["loss_change"] = (self.loss_after - self.loss_base[:, None, None]).mean(0)
        out["layer_impact"] = self.impact.mean(0)
        if self.cos_after is not None and self.patch_after is not None:
            out["cls_cosine_drop"] = (1 - self.cos_after).mean(0)
            out["patch_change"] = self.patch_after.mean(0)
        return out


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
class Outputs:
    """What one pass gives: `logits` (n, C) float32 when the model has a class head (classifier or probe),
    `features` (n, T, D) the final token features when it has no classifier; None otherwise."""

    logits: torch.Tensor | None
    features: torch.Tensor | None


def read(lm: LoadedModel, pixels: torch.Tensor) -> Outputs:
    """Run `lm` on pixels (n, 3, h, w), inside whatever `intervene` block is open; return its `Outputs`.

    A probed backbone's logits come from the same pass as its features (one pass, both objectives).
    """
    if lm.classifier:
        return Outputs(lm.forward(pixels).float(), None)
    features = lm.features(pixels)
    head = probe_head(lm)
    logits = head(features[:, lm.layout.cls_index]) if head is not None else None
    return Outputs(logits, features)


def embedding_change(
    layout: TokenLayout, features: torch.Tensor, clean: torch.Tensor
) -> dict[str, torch.Tensor]:
    """How far final token features (n, T, D) are from the clean ones (n, T, D): `cos` (n,) the cosine
    of the CLS embeddings, `patch` (n,) ||patches - clean patches||_F / ||clean patches||_F."""
    features, clean = features.float(), clean.float()
    cls = layout.cls_index
    cos = torch.nn.functional.cosine_similarity(features[:, cls], clean[:, cls], dim=-1)
    ref = layout.patches(clean, 1).flatten(1)
    patch = (layout.patches(features, 1).flatten(1) - ref).norm(dim=-1) / ref.norm(dim=-1)
    return {"cos": cos, "patch": patch}


@dataclass
class CleanPass:
    """One batch's unablated float32 pass.

    `logits` (B, C) and `target` (B,) with a class head, `features` (B, T, D) for a backbone, else None;
    `residuals[l]` the stream entering block l and `outputs[l]` block l's output, each (B, T, D);
    `taylor` (B, L, H) |dL/d gate| per image, `embedding_taylor` (B, L, H) the task-free estimate
    (see `embedding_taylor`), or None; `contexts[l]` (B, T, H, d) what layer l's attention function
    returned and `attention[l]` (B, T, D) what its attention module returned (for `output_maps`).
    """

    logits: torch.Tensor | None
    target: torch.Tensor | None
    residuals: list[torch.Tensor]
    outputs: list[torch.Tensor]
    taylor: torch.Tensor | None
    features: torch.Tensor | None = None
    embedding_taylor: torch.Tensor | None = None
    contexts: list[torch.Tensor] | None = None
    attention: list[torch.Tensor] | None = None

    @property
    def size(self) -> int:
        """Images in the batch."""
        return self.residuals[0].shape[0]

    @property
    def device(self) -> torch.device:
        """Where the batch's tensors are."""
        return self.residuals[0].device


def clean_pass(
    lm: LoadedModel,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    taylor: bool,
    probes: torch.Tensor | None = None,
) -> CleanPass:
    """Run the unablated model on pixels (B, 3, h, w); labels (B,) with -1 = unknown (target = prediction).

    With `taylor`, every image gets its own gates (B, L, H) of ones requiring grad and the graph is
    differentiated once per estimate: each image's gradient lands on its own gates. `probes`
    (K, B, D): the task-free estimate's random vectors (default: `taylor_probes` of positions 0..B-1).
    """
    batch = pixels.shape[0]
    shape = (batch, lm.num_layers, lm.num_heads)
    gates = torch.ones(shape, device=pixels.device, requires_grad=True) if taylor else None
    every = range(lm.num_layers)
    with (
        torch.set_grad_enabled(taylor),
        intervene(
            lm.parts, head_gates=gates, record_residuals=True, record_outputs=every, record_attention=True
        ) as rec,
    ):
        out = read(lm, pixels)
    target = None if out.logits is None else torch.where(labels >= 0, labels, out.logits.detach().argmax(-1))
    grads, estimate = _estimates(lm, out, target, gates, probes) if gates is not None else (None, None)
    residuals = [rec.residuals[layer].detach() for layer in every]
    outputs = [rec.outputs[layer].detach() for layer in every]
    logits = None if out.logits is None else out.logits.detach()
    features = None if out.features is None else out.features.detach().float()
    contexts = [rec.contexts[layer].detach() for layer in every]
    attention = [rec.attention_outputs[layer].detach() for layer in every]
    return CleanPass(logits, target, residuals, outputs, grads, features, estimate, contexts, attention)


def _estimates(
    lm: LoadedModel,
    out: Outputs,
    target: torch.Tensor | None,
    gates: torch.Tensor,
    probes: torch.Tensor | None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The Taylor estimates (B, L, H) of one clean pass `out` through `gates`: |dL/d gate| with a class
    head, the task-free `embedding_taylor` for a backbone; None where there is none."""
    grads = None
    if out.logits is not None and target is not None:
        grads = loss_gradients(out.logits, target, gates)
    if out.features is None:
        return grads, None
    embedding = out.features[:, lm.layout.cls_index]
    probes = taylor_probes(range(len(embedding)), embedding.shape[-1]) if probes is None else probes
    return grads, embedding_taylor(embedding, gates, probes)


def loss_gradients(logits: torch.Tensor, target: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
    """|dL/d gate| (B, L, H) per image of the cross-entropy of logits (B, C) against target (B,)."""
    loss = torch.nn.functional.cross_entropy(logits, target, reduction="sum")
    return torch.autograd.grad(loss, gates, retain_graph=True)[0].abs()


def embedding_taylor(embedding: torch.Tensor, gates: torch.Tensor, probes: torch.Tensor) -> torch.Tensor:
    """Task-free Taylor estimate (B, L, H) of each head's CLS cosine drop, per image.

    At the clean point the first-order change of 1 - cos is zero (cos is at its maximum), so the
    estimate is second order: with J_h = de/dg_h the first-order change of the final CLS embedding
    e (B, D) when gate h moves (zeroing it moves it by -1), 1 - cos(e - J_h, e) = ||P J_h||^2 /
    (2 ||e||^2) + O(J^3), P the projection orthogonal to e (a change along e does not turn it).
    ||P J_h||^2 is estimated Hutchinson-style, E_z[(z^T P J_h)^2] = ||P J_h||^2 for E[z z^T] = I,
    averaged over the `probes` (K, B, D), one backward pass of the clean graph each (`gates` (B, L, H)).
    """
    e = embedding.detach().to(torch.promote_types(embedding.dtype, torch.float32))
    norm = e.norm(dim=-1, keepdim=True)
    unit = e / norm
    total = torch.zeros_like(gates)
    for z in probes.to(e.device, e.dtype):
        v = (z - (z * unit).sum(-1, keepdim=True) * unit) / norm  # P z / ||e||: v^T J = z^T P J / ||e||
        (grad,) = torch.autograd.grad((embedding * v.to(embedding.dtype)).sum(), gates, retain_graph=True)
        total += grad.square()
    return total / (2 * len(probes))


def taylor_probes(indices: Iterable[int], width: int, seed: int = 0) -> torch.Tensor:
    """Standard normal vectors (TAYLOR_PROBES, B, width) for the images at dataset `indices` (B,).

    Each image's vectors come from a generator seeded by (seed, its index), so an image gets the
    same vectors whatever batch it lands in and on whatever device the model runs.
    """
    rows = []
    for index in indices:
        state = int(np.random.SeedSequence([seed, int(index)]).generate_state(1)[0])
        rows.append(torch.randn(TAYLOR_PROBES, width, generator=torch.Generator().manual_seed(state)))
    return torch.stack(rows, 1)


def measure(
    lm: LoadedModel, clean: CleanPass, samples: torch.Tensor, out: Outputs
) -> dict[str, torch.Tensor]:
    """Per-copy outcomes (n,) of an ablated pass `out` of images `samples` (n,) against their clean pass:
    prob, loss, correct, margin (with a class head) and cos, patch (for a backbone)."""
    measured: dict[str, torch.Tensor] = {}
    if out.logits is not None and clean.target is not None:
        s = score(out.logits, clean.target[samples])
        measured.update({f.name: getattr(s, f.name) for f in fields(Scores)})
    if out.features is not None and clean.features is not None:
        measured.update(embedding_change(lm.layout, out.features, clean.features[samples]))
    return measured


@dataclass(frozen=True)
class Cuts:
    """What makes a model's resumed copies cheaper, found by probes of the model itself (not its type):
    `rows` its `readout_rows`, `maps` its `output_maps`; None where that cut does not apply.

    Probed once per run (`CutsOnce`), not cached on the model: weights moved or edited in place
    between runs must not meet a stale output projection.
    """

    rows: tuple[int, ...] | None
    maps: list[torch.Tensor] | None


def cuts_for(lm: LoadedModel) -> Cuts:
    """The `Cuts` that apply to `lm`, in its dtype and on its device."""
    return Cuts(readout_rows(lm), output_maps(lm))


class CutsOnce:
    """The `Cuts` of each model one run ablates in (the fast copy, and the float32 model of the
    re-check), probed on first use and kept for the run: probing syncs the device and costs a few
    passes, and within a run the weights do not change."""

    def __init__(self) -> None:
        self._found: dict[int, tuple[LoadedModel, Cuts]] = {}

    def of(self, lm: LoadedModel) -> Cuts:
        """`cuts_for(lm)`, probed the first time this run asks for `lm`."""
        if id(lm) not in self._found:
            self._found[id(lm)] = (lm, cuts_for(lm))  # the model is kept: its id stays its own
        return self._found[id(lm)][1]


@torch.no_grad()
def output_maps(lm: LoadedModel) -> list[torch.Tensor] | None:
    """Per layer, the map (H, d, D) of `hooks.output_map` in `lm`'s dtype: the attention module's output is
    sum_h context_h @ map[h] + a constant (the output projection); None where it is not an affine map per
    token or resuming inside a block with it does not give what gating the head gives (then the copies
    run the ablated layer's block whole, gated)."""
    width, heads = int(lm.model.config.hidden_size), lm.num_heads
    last = lm.num_layers - 1
    hidden = _probe_stream(lm, torch.Generator().manual_seed(0))
    with intervene(lm.parts, start=(last, hidden), record_attention=[last]) as rec:
        lm.features(lm.blank_pixels(2))
    head_dim = rec.contexts[last].shape[-1]
    maps = []
    tolerance = torch.finfo(torch.float32).eps ** 0.5
    for layer, attention in enumerate(lm.parts.attention):
        weight, _offset, error = output_map(attention, heads, head_dim, width)
        if not error <= tolerance:
            log.warning(
                "%s: layer %d's attention output is not affine in its context: no skip", lm.spec, layer
            )
            return None
        maps.append(weight.to(lm.dtype))
    # the whole path once: resumed inside the last block with head 0's share taken out, against gating it
    gates = torch.ones(2, heads, device=lm.device, dtype=lm.dtype)
    gates[:, 0] = 0
    gated = lm.resume(last, hidden, features=True, head_gates={last: gates})
    skipped = rec.attention_outputs[last] - rec.contexts[last][:, :, 0] @ maps[last][0]
    resumed = lm.resume(last, hidden, features=True, attention_outputs={last: skipped})
    error = _relative_error(resumed, gated)
    if not error <= torch.finfo(lm.dtype).eps ** 0.5:
        log.warning("%s: resuming after the attention is off by %.3g: no skip", lm.spec, error)
        return None
    return maps


@torch.no_grad()
def readout_rows(lm: LoadedModel) -> tuple[int, ...] | None:
    """The prefix tokens whose final features a classifier's logits read when they read no other token
    (ViT, DeiT: the CLS token; distilled DeiT: CLS and distillation), else None: a classifier that reads
    patches too (DINOv2's: CLS and the patches' mean) and a backbone, whose final features are measured
    whole (the patch change; a probe reads them too).

    Found by passes resumed at the last block on a random stream: a row is left out when noise written
    over it (and over every other row left out) leaves the logits bit for bit the same; then checked
    against the full block.
    """
    if not lm.classifier:
        return None
    last, n_tokens = lm.num_layers - 1, lm.layout.n_tokens
    gen = torch.Generator().manual_seed(0)
    hidden = _probe_stream(lm, gen)
    noise = torch.randn(hidden.shape, generator=gen).to(lm.device, lm.dtype)
    clean = lm.resume(last, hidden)

    def unchanged(kept: list[int]) -> bool:
        mask = torch.ones(n_tokens, dtype=torch.bool, device=lm.device)
        mask[kept] = False

        def overwrite(_m: torch.nn.Module, _args: Any, out: Any) -> Any:
            first = out[0] if isinstance(out, tuple) else out
            first = torch.where(mask[:, None], noise, first)
            return (first, *out[1:]) if isinstance(out, tuple) else first

        handle = lm.parts.blocks[-1].register_forward_hook(overwrite)
        try:
            return torch.equal(lm.resume(last, hidden), clean)
        finally:
            handle.remove()

    rows = list(range(lm.layout.n_prefix))
    if not unchanged(rows):
        return None
    for row in list(rows):
        if len(rows) > 1 and unchanged([r for r in rows if r != row]):
            rows.remove(row)
    cut = lm.resume(last, hidden, last_rows=rows)
    error = _relative_error(cut, clean)
    if not error <= torch.finfo(lm.dtype).eps ** 0.5:
        log.warning(
            "%s: the last block on its read rows alone is off by %.3g: computing it whole", lm.spec, error
        )
        return None
    return tuple(rows)


def _probe_stream(lm: LoadedModel, gen: torch.Generator) -> torch.Tensor:
    """A random residual stream (2, T, D) entering the last block, to probe what a cut leaves exact."""
    hidden = torch.randn(2, lm.layout.n_tokens, int(lm.model.config.hidden_size), generator=gen)
    return hidden.to(lm.device, lm.dtype)


def _relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """The largest |got - want| relative to the largest |want|: how far a cut pass is from the full one."""
    return float((got - want).abs().max() / want.abs().max().clamp_min(torch.finfo(want.dtype).tiny))


@dataclass
class LayerCache:
    """One layer's clean tensors in the resumed passes' dtype: `stream` (B, T, D) entering the block and,
    where the clean pass recorded them, `context` (B, T, H, d) and `attention` (B, T, D) (see `CleanPass`)."""

    stream: torch.Tensor
    context: torch.Tensor | None = None
    attention: torch.Tensor | None = None


def layer_cache(clean: CleanPass, layer: int, dtype: torch.dtype) -> LayerCache:
    """`clean`'s tensors of `layer` cast to `dtype` (once per layer, not per chunk)."""
    cache = LayerCache(clean.residuals[layer].to(dtype))
    if clean.contexts is not None and clean.attention is not None:
        cache.context, cache.attention = clean.contexts[layer].to(dtype), clean.attention[layer].to(dtype)
    return cache


def _skipped_attention(
    cache: LayerCache, head_map: torch.Tensor, samples: torch.Tensor, heads: torch.Tensor
) -> torch.Tensor:
    """The attention outputs (n, T, D) of the copies, head heads[i] zeroed on image samples[i]: the clean
    output less that head's share, context_h (T, d) @ map[h] (d, D), as one batched product (no
    per-head loop: nothing here waits for the device)."""
    assert cache.context is not None and cache.attention is not None
    share = cache.context[samples, :, heads]  # (n, T, d): the ablated head's context of each copy
    return torch.baddbmm(cache.attention[samples], share, head_map[heads], alpha=-1)


@torch.no_grad()
def ablate_pairs(
    lm: LoadedModel,
    layer: int,
    clean: CleanPass,
    samples: torch.Tensor,
    heads: torch.Tensor,
    cache: LayerCache | None = None,
    cuts: Cuts | None = None,
) -> dict[str, torch.Tensor]:
    """Ablate head heads[i] of `layer` on image samples[i], resuming at `layer`; return the `measure`
    outcomes and `impact`, each (n,).

    The copies run as one batch in `lm`'s dtype; `cache` holds `clean`'s tensors of `layer` already
    in that dtype (default: cast here); `cuts` what applies to `lm` (default: `cuts_for(lm)`, probed
    here). With `output_maps`, the copies resume inside block `layer` after its attention (each copy's
    attention output less its head's share); without, they run it gated (gates (n, H)). Ablated
    before the last layer, a classifier's copies compute the last block for its `readout_rows` only;
    ablated at the last layer they need all of it (its output is the impact's).
    """
    n = samples.numel()
    cache = cache or layer_cache(clean, layer, lm.dtype)
    cuts = cuts or cuts_for(lm)
    hidden = cache.stream[samples]
    inside: dict[str, Any] = {}
    if cuts.maps is not None and cache.context is not None:
        inside["attention_outputs"] = {layer: _skipped_attention(cache, cuts.maps[layer], samples, heads)}
    else:
        gates = torch.ones(n, lm.num_heads, device=samples.device, dtype=lm.dtype)
        gates[torch.arange(n, device=samples.device), heads] = 0
        inside["head_gates"] = {layer: gates}
    rows = cuts.rows if layer < lm.num_layers - 1 else None
    with intervene(lm.parts, start=(layer, hidden), record_outputs=[layer], last_rows=rows, **inside) as rec:
        out = read(lm, lm.blank_pixels(n))
    ref = clean.outputs[layer][samples]
    # a mixed-dtype difference is computed in float32 without a float32 copy of the copies' outputs
    impact = torch.sub(rec.outputs[layer], ref).flatten(1).norm(dim=-1) / ref.flatten(1).norm(dim=-1)
    return {"impact": impact, **measure(lm, clean, samples, out)}


class _Grid:
    """Per-image ablation outcomes of one batch being filled in: name -> (B, L, H)."""

    def __init__(self, shape: tuple[int, int, int], device: torch.device) -> None:
        self.shape, self.device = shape, device
        self.values: dict[str, torch.Tensor] = {}

    def fill(
        self, layer: int, samples: torch.Tensor, heads: torch.Tensor, outcomes: Mapping[str, torch.Tensor]
    ) -> None:
        """Store the outcomes (n,) of the copies (samples[i], layer, heads[i])."""
        at = (samples, torch.full_like(samples, layer), heads)
        for name, value in outcomes.items():
            if name not in self.values:
                self.values[name] = torch.empty(self.shape, dtype=value.dtype, device=self.device)
            self.values[name][at] = value


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


def ablate_every_copy(model: LoadedModel, clean: CleanPass, grid: _Grid, chunk_size: int, cuts: Cuts) -> None:
    """Ablate every head of every layer on `clean`'s images in `model` (its dtype, with `cuts`), in
    resumed passes of `chunk_size` copies, filling `grid` with the outcomes."""
    pairs = _all_pairs(clean.size, model.num_heads, clean.device)
    for layer in range(model.num_layers):
        cache = layer_cache(clean, layer, model.dtype)
        for samples, heads in _chunks(*pairs, chunk_size):
            grid.fill(layer, samples, heads, ablate_pairs(model, layer, clean, samples, heads, cache, cuts))


def ablate_batch(
    lm: LoadedModel,
    fast: LoadedModel,
    clean: CleanPass,
    chunk_size: int,
    recheck: bool = True,
    cuts: CutsOnce | None = None,
) -> tuple[AblationStats, int]:
    """Ablate every head on one batch, resumed passes in `fast`'s dtype; return (stats, copies re-checked).

    `fast` is `lm` itself or a lower-precision copy; near-tie copies are re-run on `lm` when `recheck`
    (decisions exist only with a class head: task-free outcomes are `fast`'s). `cuts`: the run's
    probed `Cuts` (default: probed for this batch alone).
    """
    grid = _Grid((clean.size, lm.num_layers, lm.num_heads), clean.device)
    once = cuts or CutsOnce()
    ablate_every_copy(fast, clean, grid, chunk_size, once.of(fast))
    decisions = "margin" in grid.values
    rechecked = 0
    if recheck and decisions and fast is not lm:
        rechecked = _recheck(lm, fast, clean, grid, chunk_size, once)
    return _stats(clean, grid), rechecked


def _recheck(
    lm: LoadedModel, fast: LoadedModel, clean: CleanPass, grid: _Grid, chunk_size: int, once: CutsOnce
) -> int:
    """Re-run in float32 the copies whose decision margin is within the low-precision error; return how many.

    On CUDA the near ties go through TF32 first (float32 data, products on the tensor cores, about
    8x bfloat16's precision at a fraction of float32's cost); only those still within TF32's own
    error of a tie run in full float32, so every decision is float32's by the same rule.
    """
    near = grid.values["margin"].abs() <= RECHECK_FACTOR * _clean_error(fast, clean)
    count = int(near.sum())
    if not count:
        return 0
    cuts = once.of(lm)  # probed in full float32 (outside the TF32 block): TF32 would round the output map
    if lm.device.type == "cuda":
        with tf32():
            _rerun(lm, clean, grid, near, chunk_size, cuts)
            near &= grid.values["margin"].abs() <= RECHECK_FACTOR * _clean_error(lm, clean)
    _rerun(lm, clean, grid, near, chunk_size, cuts)
    return count


def _rerun(
    lm: LoadedModel, clean: CleanPass, grid: _Grid, which: torch.Tensor, chunk_size: int, cuts: Cuts
) -> None:
    """Ablate again, in `lm`, the copies marked in `which` (B, L, H) bool, overwriting their outcomes."""
    for layer in range(lm.num_layers):
        samples, heads = which[:, layer].nonzero(as_tuple=True)
        for s, h in _chunks(samples, heads, chunk_size):
            grid.fill(layer, s, h, ablate_pairs(lm, layer, clean, s, h, cuts=cuts))


@torch.no_grad()
def _clean_error(fast: LoadedModel, clean: CleanPass) -> torch.Tensor:
    """Largest |logit| difference between `fast` and float32 on the clean batch, resumed at block 0."""
    assert clean.logits is not None
    with intervene(fast.parts, start=(0, clean.residuals[0].to(fast.dtype))):
        logits = fast.forward(fast.blank_pixels(clean.size))
    return (logits.float() - clean.logits).abs().max()


@torch.no_grad()
def naive_ablation(lm: LoadedModel, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> AblationStats:
    """Reference: per head, one full float32 forward over every batch with gates (1, L, H) masking it.

    `batches` holds (pixels (B, 3, h, w), labels (B,) with -1 = unknown); returns the stats the
    fast path returns, computed without resuming, folding or re-checking.
    """
    cleans = [clean_pass(lm, pixels, labels, taylor=False) for pixels, labels in batches]
    grids = [_Grid((c.size, lm.num_layers, lm.num_heads), c.device) for c in cleans]
    for layer in range(lm.num_layers):
        for head in range(lm.num_heads):
            gates = torch.ones(1, lm.num_layers, lm.num_heads, device=lm.device)
            gates[0, layer, head] = 0
            for (pixels, _), clean, grid in zip(batches, cleans, grids, strict=True):
                with intervene(lm.parts, head_gates=gates, record_outputs=[layer]) as rec:
                    out = read(lm, pixels)
                ref = clean.outputs[layer].flatten(1)
                impact = (rec.outputs[layer].flatten(1) - ref).norm(dim=-1) / ref.norm(dim=-1)
                samples = torch.arange(pixels.shape[0], device=pixels.device)
                outcomes = {"impact": impact, **measure(lm, clean, samples, out)}
                grid.fill(layer, samples, torch.full_like(samples, head), outcomes)
    return AblationStats.cat([_stats(c, g) for c, g in zip(cleans, grids, strict=True)])


def _stats(clean: CleanPass, grid: _Grid) -> AblationStats:
    v = grid.values
    stats = AblationStats(v["impact"], cos_after=v.get("cos"), patch_after=v.get("patch"))
    if clean.logits is None or clean.target is None:
        return stats
    base = score(clean.logits, clean.target)
    stats.target, stats.prob_base, stats.loss_base, stats.correct_base = (
        clean.target,
        base.prob,
        base.loss,
        base.correct,
    )
    stats.prob_after, stats.loss_after, stats.correct_after = v["prob"], v["loss"], v["correct"]
    return stats


def taylor_importance(abs_grads: torch.Tensor, images: int) -> tuple[torch.Tensor, torch.Tensor]:
    """From per-image estimates summed over images (L, H): (their mean, the same normalised per layer),
    each (L, H).

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
    classes are those categories (the demo and random models, a probe fitted on SynthScenes);
    uploads are labelled by the model's own class indices. A model without classes uses none.
    """
    if not lm.labels:
        return False
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


def _summed(total: torch.Tensor | None, per_image: torch.Tensor | None) -> torch.Tensor | None:
    """`total` (L, H) plus per_image (B, L, H) summed over images; None when there is nothing to add."""
    if per_image is None:
        return total
    return per_image.sum(0) if total is None else total + per_image.sum(0)


@dataclass
class _Collected:
    """What the batch loop keeps: per-batch stats, labels and predictions (B,), the summed Taylor estimates
    (L, H), re-checked copies."""

    stats: list[AblationStats] = field(default_factory=list)
    labels: list[torch.Tensor] = field(default_factory=list)
    predictions: list[torch.Tensor] = field(default_factory=list)
    taylor: torch.Tensor | None = None
    embedding_taylor: torch.Tensor | None = None
    rechecked: int = 0

    def add(self, clean: CleanPass, labels: torch.Tensor, ablated: tuple[AblationStats, int]) -> None:
        """Keep one batch's results."""
        self.stats.append(ablated[0])
        self.rechecked += ablated[1]
        self.labels.append(labels)
        if clean.logits is not None:
            self.predictions.append(clean.logits.argmax(-1))
        self.taylor = _summed(self.taylor, clean.taylor)
        self.embedding_taylor = _summed(self.embedding_taylor, clean.embedding_taylor)


def run(
    lm: LoadedModel, source: ImageSource, params: HeadImportanceParams, progress: Progress = no_progress
) -> AnalysisResult:
    """Head importance over `source`; returns the arrays and summary declared in
    `vitscope.contracts.kinds.head_importance` (docs/KINDS.md).

    Arrays, (L, H): layer_impact; accuracy_drop, prob_drop, loss_change, taylor, taylor_raw with a class
    head (classifier or probe); cls_cosine_drop, patch_change, embedding_taylor, embedding_taylor_raw
    for a backbone. (N, L, H): prob_after (class head), cls_cosine_after (backbone). (N,): prob_base,
    labels, predictions (class head). The summary says which metrics are there and why the others are not.
    """
    require_images(source)
    probing = not lm.classifier and params.probe  # the probe's embedding pass takes the first 5%
    lm, probe, no_probe = _class_head(lm, source, params, progress)
    fast = model_in(lm, params.dtype)
    use_labels = labels_apply(lm, source)
    if lm.labels and not use_labels:
        log.info("the dataset's labels are not classes of %s: scoring against its predictions", lm.spec)
    col = _Collected()
    width = int(lm.model.config.hidden_size)
    span = (0.05 if probing else 0.0, 0.98)
    cuts = CutsOnce()
    for batch in stream(source, params.batch_size, lm.input_geometry, progress, "ablated every head", span):
        pixels = lm.preprocess(batch.images)
        labels = _labels(batch.labels, use_labels, lm)
        probes = None if lm.classifier else taylor_probes(batch.indices, width, params.seed)
        clean = clean_pass(lm, pixels, labels, params.taylor, probes)
        ablated = ablate_batch(lm, fast, clean, params.chunk_size, params.recheck, cuts)
        col.add(clean, labels, ablated)
    return _assemble(lm, col, params, probe, no_probe)


def _class_head(
    lm: LoadedModel, source: ImageSource, params: HeadImportanceParams, progress: Progress
) -> tuple[LoadedModel, ProbeFit | None, str | None]:
    """The model to score: `lm` itself, or a backbone with a probe fitted on the labelled images.

    Returns (model, the probe or None, why there is no class head or None).
    """
    if lm.classifier:
        return lm, None, None
    if not params.probe:
        return lm, None, "the model has no classifier and probe=false"
    fit = probe_on(lm, source, params.batch_size, params.seed, progress, (0.0, 0.05))
    if isinstance(fit, str):
        log.info("%s: no probe (%s)", lm.spec, fit)
        return lm, None, fit
    return with_probe(lm, fit.head), fit, None


def _objective(lm: LoadedModel) -> str:
    """Where the class metrics come from (the summary's `objective`)."""
    if lm.classifier:
        return "classifier"
    return "task-free" if probe_head(lm) is None else "probe"


def _assemble(
    lm: LoadedModel,
    col: _Collected,
    params: HeadImportanceParams,
    probe: ProbeFit | None,
    no_probe: str | None,
) -> AnalysisResult:
    """Turn the collected per-batch tensors into the result arrays and the JSON summary."""
    stats = AblationStats.cat(col.stats)
    labels = torch.cat(col.labels)
    result = AnalysisResult()
    per_head = stats.per_head()
    for name, value in per_head.items():
        result.add(name, value)
    _per_image_arrays(result, stats, labels, col)
    taylor = _taylor_results(result, col, per_head, len(labels))
    labelled = labels >= 0
    result.summary = {
        "images": len(labels),
        "objective": _objective(lm),
        **_coverage(lm, result.arrays, params, no_probe),
        "probe": probe.summary() if probe is not None else None,
        "labelled": int(labelled.sum()),
        "accuracy": _accuracy(stats.correct_base, labelled),
        "accuracy_drop": per_head["accuracy_drop"].tolist() if "accuracy_drop" in per_head else None,
        "label_names": list(lm.labels),
        "dtype": params.dtype,
        "rechecked": col.rechecked,
        **taylor,
    }
    return result


def _per_image_arrays(
    result: AnalysisResult, stats: AblationStats, labels: torch.Tensor, col: _Collected
) -> None:
    """Add prob_after (N, L, H), prob_base, labels, predictions (N,) with a class head, cls_cosine_after
    (N, L, H) for a backbone."""
    if stats.prob_after is not None and stats.prob_base is not None:
        result.add("prob_after", stats.prob_after)
        result.add("prob_base", stats.prob_base)
        result.add("labels", labels)
        result.add("predictions", torch.cat(col.predictions))
    if stats.cos_after is not None:
        result.add("cls_cosine_after", stats.cos_after)


def _accuracy(correct: torch.Tensor | None, labelled: torch.Tensor) -> float | None:
    """Top-1 accuracy over the labelled images (N,) bool, from per-image correctness (N,); None without either."""
    if correct is None or not labelled.any():
        return None
    return float(correct[labelled].float().mean())


def _coverage(
    lm: LoadedModel, arrays: Mapping[str, np.ndarray], params: HeadImportanceParams, no_probe: str | None
) -> dict:
    """The summary's `metrics` (the per-head metrics present) and `left_out` (the others, with why)."""
    why: dict[str, str] = {}
    if lm.classifier:
        why = dict.fromkeys(
            EMBEDDING_METRICS, "the model has a classifier: the task-free metrics are for backbones"
        )
    elif no_probe is not None:
        why = dict.fromkeys(CLASS_METRICS, no_probe)
    if not params.taylor:
        why = {"taylor": "taylor=false", "embedding_taylor": "taylor=false", **why}
    return {
        "metrics": [name for name in PER_HEAD if name in arrays],
        "left_out": {name: why.get(name, "not computed") for name in PER_HEAD if name not in arrays},
    }


def _taylor_results(
    result: AnalysisResult, col: _Collected, per_head: dict[str, torch.Tensor], images: int
) -> dict:
    """Add `taylor`, `taylor_raw` (the loss gradient, with a class head) and `embedding_taylor`,
    `embedding_taylor_raw` (task-free, for a backbone), each (L, H); return the summary's Spearman
    correlations of each estimate with the exact metrics (`_raw` keys: the unnormalised estimate).

    `spearman` is the headline: the loss estimate (normalised) against the loss change with a class
    head, else the raw task-free estimate (itself an estimate of the drop) against the CLS cosine drop.
    """
    detail: dict[str, float | None] = {}
    headline = None
    estimates = (
        ("taylor", col.taylor, CLASS_METRICS[:3]),
        ("embedding_taylor", col.embedding_taylor, EMBEDDING_METRICS[:2]),
    )
    for name, summed, exact in estimates:
        if summed is None:
            continue
        raw, normalised = taylor_importance(summed, images)
        result.add(name, normalised)
        result.add(f"{name}_raw", raw)
        for metric in exact:
            detail[metric] = spearman(normalised, per_head[metric])
            detail[f"{metric}_raw"] = spearman(raw, per_head[metric])
        if headline is None:
            headline = detail["loss_change"] if name == "taylor" else detail["cls_cosine_drop_raw"]
    return {"spearman": headline, "spearman_detail": detail}
