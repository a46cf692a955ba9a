"""Standard configs of the supported ViT families, for `random:<family>-<size>` models.

Sizes follow the published models (ViT/DeiT tiny 192-d 3 heads, small 384-d 6 heads,
base 768-d 12 heads, 12 layers each, 224 px); `micro` is a 2-layer 64-d model at 32 px for
fast tests. DeiT without distillation is the ViT architecture with ImageNet normalization,
as its published checkpoints are.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from transformers import (
    DeiTConfig,
    DeiTForImageClassificationWithTeacher,
    Dinov2Config,
    Dinov2ForImageClassification,
    Dinov2WithRegistersConfig,
    Dinov2WithRegistersForImageClassification,
    PretrainedConfig,
    PreTrainedModel,
    ViTConfig,
    ViTForImageClassification,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Size:
    """Transformer dimensions of one standard size."""

    hidden: int
    layers: int
    heads: int
    image: int
    patch: int


SIZES = {
    "micro": Size(64, 2, 4, 32, 8),
    "tiny": Size(192, 12, 3, 224, 16),
    "small": Size(384, 12, 6, 224, 16),
    "base": Size(768, 12, 12, 224, 16),
}
DINO_PATCH = {"micro": 8, "tiny": 14, "small": 14, "base": 14}


def seeded_init(family: str, size: str) -> int:
    """The seed random weights of `random:<family>-<size>` are drawn with: fixed per spec, so one
    job id means the same numbers on every worker and after every recompute."""
    return zlib.crc32(f"{family}-{size}".encode())


def random_model(
    family: str, size: str, labels: list[str]
) -> tuple[type[PreTrainedModel], PretrainedConfig, tuple[float, ...], tuple[float, ...]]:
    """Return (model class, its config, image mean, image std) of a family and size with `labels`:
    what `random:<family>-<size>` is before its weights are drawn (`vitscope.vit.models.seeded`)."""
    s = SIZES[size]
    common: dict[str, Any] = {
        "hidden_size": s.hidden,
        "num_hidden_layers": s.layers,
        "num_attention_heads": s.heads,
        "image_size": s.image,
        "id2label": dict(enumerate(labels)),
        "label2id": {name: i for i, name in enumerate(labels)},
    }
    if family in ("vit", "deit"):
        config: PretrainedConfig = ViTConfig(patch_size=s.patch, intermediate_size=4 * s.hidden, **common)
        mean, std = (HALF, HALF) if family == "vit" else (IMAGENET_MEAN, IMAGENET_STD)
        return ViTForImageClassification, config, mean, std
    if family == "deit-distilled":
        config = DeiTConfig(patch_size=s.patch, intermediate_size=4 * s.hidden, **common)
        return DeiTForImageClassificationWithTeacher, config, IMAGENET_MEAN, IMAGENET_STD
    if family == "dinov2":
        config = Dinov2Config(patch_size=DINO_PATCH[size], **common)
        return Dinov2ForImageClassification, config, IMAGENET_MEAN, IMAGENET_STD
    if family == "dinov2-registers":
        config = Dinov2WithRegistersConfig(patch_size=DINO_PATCH[size], num_register_tokens=4, **common)
        return Dinov2WithRegistersForImageClassification, config, IMAGENET_MEAN, IMAGENET_STD
    raise ValueError(f"unknown family {family!r}")
