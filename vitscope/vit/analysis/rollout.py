"""Attention rollout (Abnar & Zuidema, ACL 2020), reduced on the fly layer by layer.

Per layer the attention of all heads is averaged and mixed with the identity for the residual
connection, A' = 0.5 * mean_heads(A) + 0.5 * I, rows re-normalised, and the rollout is the product
A'_L ... A'_1 (the first layer acts first). The map of an image is the CLS token's row of the
product over the patch tokens. `Rollout` is an `intervene` sink: it folds each layer's
probabilities into the running (B, T, T) product as the forward pass produces them, so no
layer's (B, heads, T, T) map outlives its layer.
"""

from __future__ import annotations

import torch

from vitscope.vit.models import LoadedModel, TokenLayout, intervene


def residual_attention(probs: torch.Tensor) -> torch.Tensor:
    """Return A' = rownorm(0.5 * mean_heads(probs) + 0.5 * I), (B, T, T), for probs (B, heads, T, T)."""
    mixed = 0.5 * probs.float().mean(1)
    mixed = mixed + 0.5 * torch.eye(mixed.shape[-1], device=mixed.device, dtype=mixed.dtype)
    # rows of softmax output already sum to 1; re-normalising keeps the rollout stochastic even
    # when a caller passes scaled (partially pruned) attention
    return mixed / mixed.sum(-1, keepdim=True)


class Rollout:
    """An attention sink accumulating the rollout; `joint` is A'_l ... A'_1, (B, T, T), after layer l."""

    def __init__(self) -> None:
        self.joint: torch.Tensor | None = None
        self.layers: list[int] = []

    def __call__(self, layer: int, probs: torch.Tensor) -> None:
        """Fold one layer's probabilities (B, heads, T, T) into the product (layers arrive in order)."""
        if self.layers and layer <= self.layers[-1]:
            raise ValueError(f"rollout got layer {layer} after layer {self.layers[-1]}: one forward per sink")
        step = residual_attention(probs.detach())
        self.joint = step if self.joint is None else step @ self.joint
        self.layers.append(layer)

    def cls_map(self, layout: TokenLayout) -> torch.Tensor:
        """Return the CLS row of the rollout over the patch tokens, (B, rows, cols), unnormalised."""
        if self.joint is None:
            raise ValueError("no attention was captured: run a forward pass inside intervene(sink=...)")
        row = self.joint[:, layout.cls_index, :]
        return layout.to_grid(layout.patches(row, dim=-1))


def attention_rollout(lm: LoadedModel, pixels: torch.Tensor) -> torch.Tensor:
    """Return the CLS-to-patch rollout of `pixels` (B, 3, H, W), (B, rows, cols), unnormalised."""
    sink = Rollout()
    with torch.no_grad(), intervene(lm.parts, capture=True, sink=sink):
        lm.forward(pixels)
    return sink.cls_map(lm.layout_for((pixels.shape[-2], pixels.shape[-1])))
