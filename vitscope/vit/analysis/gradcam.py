"""Grad-CAM (Selvaraju et al., ICCV 2017) on a ViT block's patch tokens.

The activations are the patch tokens a block outputs (prefix tokens dropped by the layout), the
gradients those of the target class logit with respect to the same tokens: the channel weights are
the gradients averaged over patches, and the map is ReLU(sum_c w_c A_c). A ViT classifier reads
only the CLS token after the last block, so the last block's patch tokens get zero gradient
(the pytorch-grad-cam ViT tutorial makes the same point); the default is therefore the block
before the last, and callers report which block they used.
"""

from __future__ import annotations

import torch

from vitscope.vit.models import LoadedModel, TokenLayout, intervene


def default_layer(num_layers: int) -> int:
    """The default Grad-CAM block: the one before the last (the last has zero patch gradients)."""
    return max(num_layers - 2, 0)


def gradcam_map(tokens: torch.Tensor, grads: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """Return the raw map ReLU(sum_c w_c A_c), (B, rows, cols), from block tokens and their gradients (B, T, C)."""
    acts = layout.patches(tokens.detach().float(), dim=1)
    g = layout.patches(grads.float(), dim=1)
    weights = g.mean(1, keepdim=True)  # (B, 1, C): average gradient per channel over patches
    cam = (acts * weights).sum(-1).clamp_min(0)
    return layout.to_grid(cam)


def target_gradients(logits: torch.Tensor, tokens: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Return d logits[b, target[b]] / d tokens, (B, T, C); `tokens` must be in `logits`' graph.

    Summing the per-image target logits gives every image its own gradient in one backward pass:
    images do not interact in a ViT (LayerNorm is per token, no batch statistics).
    """
    chosen = logits.gather(1, target[:, None]).sum()
    (grads,) = torch.autograd.grad(chosen, tokens)
    return grads


def gradcam(
    lm: LoadedModel, pixels: torch.Tensor, layer: int | None = None, target: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (raw Grad-CAM maps (B, rows, cols), target classes (B,)) for `pixels` (B, 3, H, W).

    `layer` defaults to `default_layer`; `target` to each image's top-1 prediction.
    """
    layer = default_layer(lm.num_layers) if layer is None else layer
    layout = lm.layout_for((pixels.shape[-2], pixels.shape[-1]))
    with torch.enable_grad(), intervene(lm.parts, record_outputs=[layer]) as rec:
        # pixels requiring grad keep the tokens in the graph even if the weights are frozen
        logits = lm.forward(pixels.detach().requires_grad_(True))
    target = logits.argmax(-1) if target is None else target.to(logits.device)
    grads = target_gradients(logits, rec.outputs[layer], target)
    return gradcam_map(rec.outputs[layer], grads, layout), target
