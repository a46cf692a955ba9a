"""Factories for tiny real models used across tests."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache

import torch
from transformers import ViTImageProcessor

from vitscope.vit.models import LoadedModel, load_model

FAMILIES = ("vit", "deit", "deit-distilled", "dinov2", "dinov2-registers")


@cache
def _micro(family: str) -> LoadedModel:
    torch.manual_seed(0)
    return load_model(f"random:{family}-micro")


def micro(family: str = "vit") -> LoadedModel:
    """A 2-layer, 4-head, 64-d random model of `family` at 32 px (cached per session)."""
    return _micro(family)


@cache
def _micro_backbone(family: str) -> LoadedModel:
    lm = micro(family)
    folder = tempfile.mkdtemp(prefix=f"vitscope-micro-{family}-backbone-")
    atexit.register(shutil.rmtree, folder, True)
    # the classifier's own (seeded) backbone weights, all of them: the loader refuses a missing one
    lm.model.base_model.save_pretrained(folder)
    h, w = lm.layout.image_size
    processor = ViTImageProcessor(
        size={"height": h, "width": w}, image_mean=list(lm.mean), image_std=list(lm.std)
    )
    processor.save_pretrained(folder)
    return load_model(folder)


def micro_backbone(family: str = "vit") -> LoadedModel:
    """`micro(family)` without its classifier, loaded as a backbone from a saved HF folder (config
    architectures e.g. ["ViTModel"]): same weights, normalization and input size (cached per session)."""
    return _micro_backbone(family)


def pixels(
    lm: LoadedModel, batch: int = 2, size: tuple[int, int] | None = None, seed: int = 0
) -> torch.Tensor:
    """Random normalized pixel values (B, 3, h, w) for `lm`."""
    h, w = size or lm.layout.image_size
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, h, w, generator=g)
