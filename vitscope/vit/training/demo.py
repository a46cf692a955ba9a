"""Train the shipped demo ViT on SynthScenes (`vitscope train-demo`).

The demo model is a 6-layer, 6-head, 192-d ViT on 96x96 images with 8-px patches
(a 12x12 grid), trained from scratch on an endless stream of SynthScenes images
(seed `TRAIN_SEED`); validation uses `VAL_SEED`, and the acceptance set
(`synthscenes:1000:seed=424242`) uses a seed never seen in training. It is saved in
Hugging Face format (config.json, model.safetensors, preprocessor_config.json).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessorPil

from vitscope.vit.data.synthscenes import CATEGORIES, SynthScenes

log = logging.getLogger(__name__)
TRAIN_SEED, VAL_SEED = 1, 2
MEAN = STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class DemoRecipe:
    """Architecture and optimisation settings of the demo model."""

    hidden: int = 192
    layers: int = 6
    heads: int = 6
    image: int = 96
    patch: int = 8
    steps: int = 8000
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: int = 400
    label_smoothing: float = 0.1
    max_minutes: float = 8.0
    seed: int = 0


class _Batches(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Batch `i` of an endless SynthScenes stream: images (B, 3, H, W) uint8, labels (B,)."""

    def __init__(self, batch_size: int, image: int, seed: int, n_batches: int) -> None:
        self.batch_size, self.image, self.seed, self.n_batches = batch_size, image, seed, n_batches
        self.scenes = SynthScenes(n_batches * batch_size, seed=seed, image_size=image)

    def __len__(self) -> int:
        return self.n_batches

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        items = [self.scenes[i * self.batch_size + j] for j in range(self.batch_size)]
        images = torch.from_numpy(np.stack([it.image for it in items])).permute(0, 3, 1, 2)
        return images, torch.tensor([it.label for it in items])


def build_model(recipe: DemoRecipe) -> ViTForImageClassification:
    """A freshly initialised demo ViT with the SynthScenes labels."""
    config = ViTConfig(
        hidden_size=recipe.hidden,
        num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads,
        intermediate_size=4 * recipe.hidden,
        image_size=recipe.image,
        patch_size=recipe.patch,
        id2label=dict(enumerate(CATEGORIES)),
        label2id={name: i for i, name in enumerate(CATEGORIES)},
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(recipe.seed)
    model = ViTForImageClassification(config)
    model.set_attn_implementation("sdpa")
    return model


def _normalize(images: torch.Tensor) -> torch.Tensor:
    return (images.float() / 255.0 - 0.5) / 0.5


def _lr_at(step: int, recipe: DemoRecipe) -> float:
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    progress = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
    return recipe.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def evaluate(
    model: ViTForImageClassification, n: int, seed: int, device: torch.device, batch_size: int = 250
) -> float:
    """Top-1 accuracy of `model` on `synthscenes:n:seed=seed` at the model's input size."""
    model.eval()
    image: int = model.config.image_size  # type: ignore[assignment]  # the demo config uses one int
    correct = 0
    for images, labels, _boxes in SynthScenes(n, seed=seed, image_size=image).batches(batch_size):
        x = _normalize(torch.from_numpy(images).permute(0, 3, 1, 2).to(device))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(pixel_values=x).logits
        correct += int((logits.argmax(-1).cpu() == torch.from_numpy(labels)).sum())
    model.train()
    return correct / n


def train(recipe: DemoRecipe, out: Path, device: str = "cuda", workers: int = 8) -> dict[str, float]:
    """Train, evaluate and save the demo model to `out`; returns the final metrics."""
    dev = torch.device(device)
    model = build_model(recipe)
    module: nn.Module = model
    module.to(dev).train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=recipe.lr,
    )
    loader = DataLoader(
        _Batches(recipe.batch_size, recipe.image, TRAIN_SEED, recipe.steps),
        batch_size=None,
        num_workers=workers,
        pin_memory=dev.type == "cuda",
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    start, step, running = time.time(), 0, 0.0
    for step, (images, labels) in enumerate(loader):
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, recipe)
        x, y = _normalize(images.to(dev, non_blocking=True)), labels.to(dev, non_blocking=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            loss = loss_fn(model(pixel_values=x).logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        value = float(loss.detach())
        running = 0.98 * running + 0.02 * value if step else value
        if step % 500 == 0 or step == recipe.steps - 1:
            val = (
                evaluate(model, 1000, VAL_SEED, dev)
                if step % 2000 == 0 or step == recipe.steps - 1
                else float("nan")
            )
            log.info(
                "step %d loss %.4f lr %.2e val_top1 %.4f elapsed %.0fs",
                step,
                running,
                _lr_at(step, recipe),
                val,
                time.time() - start,
            )
        if time.time() - start > recipe.max_minutes * 60:
            log.warning("time budget reached at step %d", step)
            break
    metrics = {
        "steps": step + 1,
        "train_loss": running,
        "val_top1": evaluate(model, 2000, VAL_SEED, dev),
        "minutes": (time.time() - start) / 60,
    }
    save(model, out, recipe, metrics)
    return metrics


def save(model: ViTForImageClassification, out: Path, recipe: DemoRecipe, metrics: dict[str, float]) -> None:
    """Write the model in Hugging Face format (safetensors) with its processor config and recipe."""
    out.mkdir(parents=True, exist_ok=True)
    module: nn.Module = model
    module.to("cpu", dtype=torch.float32)
    model.save_pretrained(out, safe_serialization=True)
    size = {"height": recipe.image, "width": recipe.image}
    ViTImageProcessorPil(size=size, image_mean=list(MEAN), image_std=list(STD)).save_pretrained(out)
    (out / "training.json").write_text(json.dumps({"recipe": asdict(recipe), "metrics": metrics}, indent=2))
