"""The one mechanism for looking inside and intervening on a ViT.

vitscope registers one attention function, `"vitscope"`, in transformers' public
`AttentionInterface` registry, and every loaded model runs with it. Outside an
`intervene(...)` block it forwards straight to the registered SDPA function, so the model
keeps its fused fast path. Inside the block, per layer:

- captured layers compute the attention probabilities explicitly (the same operations as
  transformers' eager attention) and hand them to a sink: stored, or reduced on the fly;
  or, with a score sink, hand over the query and key instead and keep the fused SDPA path
  (for reductions that recompute the scores themselves, `vitscope.vit.analysis.fused_rings`);
- `head_gates` multiply each head's output, with a separate gate per sample, so many
  ablations run as one batch (gates can require grad: the Taylor importance); given per
  layer, only those layers pay for the multiply;
- `attn_scale` multiplies the probabilities of a layer elementwise (partial pruning:
  zero the CLS row, the CLS column or the patch-to-patch block of chosen heads);
- the residual stream entering each block, and block outputs, can be recorded;
- `start=(layer, hidden)` resumes a forward pass at `layer` from a cached residual stream:
  the embeddings return the cached tensor and the earlier blocks pass it through.

Every hook, attribute and override is removed in the context manager's `finally`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers import AttentionInterface

ATTN_IMPLEMENTATION = "vitscope"
HOOK_ATTR = "vitscope_hook"

AttentionSink = Callable[[int, torch.Tensor], None]
"""Called with (layer, probabilities (B, heads, T, T)) for every captured layer."""

ScoreSink = Callable[[int, torch.Tensor, torch.Tensor, float], None]
"""Called with (layer, query, key (B, heads, T, d), scaling) for every captured layer."""


@dataclass
class LayerHook:
    """What the attention function does for one layer during an `intervene` block."""

    layer: int
    capture: bool = False
    sink: AttentionSink | None = None
    score_sink: ScoreSink | None = None
    gate: torch.Tensor | None = None  # (B or 1, heads)
    scale: torch.Tensor | None = None  # (B or 1, heads or 1, T, T)

    @property
    def explicit(self) -> bool:
        """Whether this layer needs the probabilities materialized."""
        return self.capture or self.scale is not None


_probe_calls: list[nn.Module] | None = None


def vitscope_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention with optional capture and masking; returns (output (B, T, heads, d), probs or None)."""
    if _probe_calls is not None:
        _probe_calls.append(module)
    hook: LayerHook | None = getattr(module, HOOK_ATTR, None)
    probs = None
    if hook is not None and hook.score_sink is not None:
        if attention_mask is not None:
            raise ValueError(
                "a score sink takes unmasked attention only: this model passes an attention mask"
            )
        hook.score_sink(hook.layer, query, key, query.size(-1) ** -0.5 if scaling is None else scaling)
    if hook is None or not hook.explicit:
        sdpa = AttentionInterface()["sdpa"]
        out, _ = sdpa(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    else:
        probs = _explicit_probs(query, key, attention_mask, scaling, hook)
        out = torch.matmul(probs, value).transpose(1, 2).contiguous()
    if hook is not None and hook.gate is not None:
        out = out * hook.gate[:, None, :, None].to(out.dtype)
    return out, probs


def _explicit_probs(
    query: torch.Tensor,
    key: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None,
    hook: LayerHook,
) -> torch.Tensor:
    """Softmax attention probabilities (B, heads, T, T), as transformers' eager path computes them.

    In float32 the operations are eager's own. In half precision the scale is folded into the
    query and the softmax runs in the input dtype (it accumulates in float32 internally), so the
    (B, heads, T, T) tensor is written twice instead of five times; the result differs from
    eager's float32-softmax-then-cast by rounding only.
    """
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    if query.dtype == torch.float32:
        scores = torch.matmul(query, key.transpose(2, 3)) * scaling
        if attention_mask is not None:
            scores = scores + attention_mask
        probs = nn.functional.softmax(scores, dim=-1, dtype=torch.float32)
    else:
        scores = torch.matmul(query * scaling, key.transpose(2, 3))
        if attention_mask is not None:
            scores = scores + attention_mask
        probs = nn.functional.softmax(scores, dim=-1)
    if hook.capture and hook.sink is not None:
        hook.sink(hook.layer, probs)
    if hook.scale is not None:
        probs = probs * hook.scale.to(probs.dtype)
    return probs


AttentionInterface.register(ATTN_IMPLEMENTATION, vitscope_attention)


@contextmanager
def probe_attention_calls() -> Iterator[list[nn.Module]]:
    """Record, in call order, the modules that call the attention function (one per layer)."""
    global _probe_calls
    calls: list[nn.Module] = []
    _probe_calls = calls
    try:
        yield calls
    finally:
        _probe_calls = None


@dataclass
class Recording:
    """What an `intervene` block recorded.

    `attentions[l]` is (B, heads, T, T) when no sink was given; `residuals[l]` is the
    residual stream entering block l, (B, T, D); `outputs[l]` what block l returned.
    """

    attentions: dict[int, torch.Tensor] = field(default_factory=dict)
    residuals: dict[int, torch.Tensor] = field(default_factory=dict)
    outputs: dict[int, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelParts:
    """Where a model's pieces are, found by a probe pass (see `vitscope.vit.models.loading`)."""

    attention: tuple[nn.Module, ...]
    blocks: tuple[nn.Module, ...]
    embeddings: nn.Module
    block_returns_tuple: bool


@contextmanager
def intervene(
    parts: ModelParts,
    *,
    capture: bool | Iterable[int] = False,
    sink: AttentionSink | None = None,
    score_sink: ScoreSink | None = None,
    head_gates: torch.Tensor | Mapping[int, torch.Tensor] | None = None,
    attn_scale: Mapping[int, torch.Tensor] | None = None,
    record_residuals: bool | Iterable[int] = False,
    record_outputs: Iterable[int] = (),
    start: tuple[int, torch.Tensor] | None = None,
) -> Iterator[Recording]:
    """Scope captures and interventions to the forward passes run inside the block.

    `capture`: True for every layer or an iterable of layer indices. `sink`: receives each
    captured (layer, probs); without one, probabilities are stored in the recording.
    `score_sink`: receives each captured (layer, query, key, scaling) instead, and the captured
    layers keep the fused SDPA path (no probabilities are materialised); excludes `sink`.
    `head_gates`: (B or 1, layers, heads) multipliers of each head's output (0 = pruned), or
    layer -> (B or 1, heads) for the gated layers only (the others run ungated).
    `attn_scale`: layer -> (B or 1, heads or 1, T, T) multiplier of that layer's probabilities.
    `start`: (layer, hidden (B, T, D)) resumes the pass at that layer from a cached stream.
    Yields the `Recording` that fills as forward passes run.
    """
    if sink is not None and score_sink is not None:
        raise ValueError("give a sink or a score sink, not both")
    n_layers = len(parts.attention)
    rec = Recording()
    capture_set = _layer_set(capture, n_layers)
    store: AttentionSink = sink or (lambda layer, p: rec.attentions.__setitem__(layer, p))
    removers: list[Callable[[], None]] = []
    try:
        for layer, module in enumerate(parts.attention):
            hook = LayerHook(
                layer=layer,
                capture=layer in capture_set and score_sink is None,
                sink=store,
                score_sink=score_sink if layer in capture_set else None,
                gate=_gate(head_gates, layer),
                scale=None if attn_scale is None else attn_scale.get(layer),
            )
            setattr(module, HOOK_ATTR, hook)
            removers.append(_deleter(module, HOOK_ATTR))
        removers += _record_blocks(parts, rec, _layer_set(record_residuals, n_layers), set(record_outputs))
        if start is not None:
            removers += _resume_at(parts, *start)
        yield rec
    finally:
        for remove in reversed(removers):
            remove()


def _gate(head_gates: torch.Tensor | Mapping[int, torch.Tensor] | None, layer: int) -> torch.Tensor | None:
    """The (B or 1, heads) gates of `layer`, or None when it runs ungated."""
    if head_gates is None:
        return None
    if isinstance(head_gates, torch.Tensor):
        return head_gates[:, layer]
    return head_gates.get(layer)


def _layer_set(which: bool | Iterable[int], n_layers: int) -> set[int]:
    if which is True:
        return set(range(n_layers))
    if which is False:
        return set()
    layers = set(which)
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if bad:
        raise ValueError(f"layers {sorted(bad)} out of range: the model has {n_layers} layers")
    return layers


def _first_tensor(x: Any) -> torch.Tensor:
    return x[0] if isinstance(x, tuple) else x


def _record_blocks(
    parts: ModelParts, rec: Recording, residuals: set[int], outputs: set[int]
) -> list[Callable[[], None]]:
    handles = []
    for layer, block in enumerate(parts.blocks):
        if layer in residuals:

            def pre(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], layer: int = layer) -> None:
                rec.residuals[layer] = args[0] if args else kwargs["hidden_states"]

            handles.append(block.register_forward_pre_hook(pre, with_kwargs=True))
        if layer in outputs:

            def post(_m: nn.Module, _args: Any, out: Any, layer: int = layer) -> None:
                rec.outputs[layer] = _first_tensor(out)

            handles.append(block.register_forward_hook(post))
    return [h.remove for h in handles]


def _resume_at(parts: ModelParts, layer: int, hidden: torch.Tensor) -> list[Callable[[], None]]:
    """Make the embeddings emit `hidden` and blocks before `layer` pass it through unchanged."""
    if not 0 <= layer < len(parts.blocks):
        raise ValueError(f"cannot start at layer {layer}: the model has {len(parts.blocks)} layers")
    wrap = parts.block_returns_tuple

    def emit(*_args: Any, **_kwargs: Any) -> torch.Tensor:
        return hidden

    def passthrough(hidden_states: torch.Tensor, *_args: Any, **_kwargs: Any) -> Any:
        return (hidden_states,) if wrap else hidden_states

    overridden = [(parts.embeddings, emit)] + [(block, passthrough) for block in parts.blocks[:layer]]
    for module, fn in overridden:
        module.forward = fn
    return [_deleter(module, "forward") for module, _ in overridden]


def _deleter(module: nn.Module, attr: str) -> Callable[[], None]:
    """A callable that removes an instance attribute we set on `module`."""
    return lambda: delattr(module, attr)
