"""Factories for tiny real models used across tests."""

from __future__ import annotations

from functools import cache

import torch

from vitscope.vit.models import LoadedModel, load_model

FAMILIES = ("vit", "deit", "deit-distilled", "dinov2", "dinov2-registers")


@cache
def _micro(family: str) -> LoadedModel:
    torch.manual_seed(0)
    return load_model(f"random:{family}-micro")


def micro(family: str = "vit") -> LoadedModel:
    """A 2-layer, 4-head, 64-d random model of `family` at 32 px (cached per session)."""
    return _micro(family)


def pixels(
    lm: LoadedModel, batch: int = 2, size: tuple[int, int] | None = None, seed: int = 0
) -> torch.Tensor:
    """Random normalized pixel values (B, 3, h, w) for `lm`."""
    h, w = size or lm.layout.image_size
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, h, w, generator=g)
