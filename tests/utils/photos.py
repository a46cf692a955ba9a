"""Real photos for tests: files that scikit-image and scikit-learn ship (no download), with object
boxes drawn by hand (`tests/data/photo_boxes.json`)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

BOXES_FILE = Path(__file__).resolve().parents[1] / "data" / "photo_boxes.json"

CROPS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    # more framings of one photo: (photo, (x0, y0, x1, y1)); the face fills the frame
    "astronaut_face": ("astronaut", (120, 0, 340, 220)),
    "astronaut_shuttle": ("astronaut", (330, 0, 512, 300)),
}


def boxes() -> dict[str, tuple[int, int, int, int]]:
    """Return the hand-drawn object box (x0, y0, x1, y1) of every photo, in its pixels."""
    return {name: tuple(box) for name, box in json.loads(BOXES_FILE.read_text())["boxes"].items()}


def load(name: str) -> np.ndarray:
    """Return photo `name` as uint8 RGB (H, W, 3)."""
    from skimage import data
    from sklearn.datasets import load_sample_image

    if name in CROPS:
        source, (x0, y0, x1, y1) = CROPS[name]
        return load(source)[y0:y1, x0:x1].copy()
    loaders = {
        "astronaut": data.astronaut,
        "cameraman": data.camera,
        "chelsea": data.chelsea,
        "coffee": data.coffee,
        "rocket": data.rocket,
        "motorcycle_left": lambda: data.stereo_motorcycle()[0],
        "motorcycle_right": lambda: data.stereo_motorcycle()[1],
        "clock": data.clock,
        "flower": lambda: load_sample_image("flower.jpg"),
        "china": lambda: load_sample_image("china.jpg"),
    }
    pixels = np.asarray(loaders[name]())
    return np.repeat(pixels[..., None], 3, -1) if pixels.ndim == 2 else pixels[..., :3]


def png(pixels: np.ndarray) -> bytes:
    """Return uint8 RGB pixels as PNG bytes (an upload)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
