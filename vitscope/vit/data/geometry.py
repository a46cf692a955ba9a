"""How an image becomes a model input: the model's own resize and crop, and the way back.

`InputGeometry` is read from the checkpoint's image processor: either a plain resize to the
input size (ViT's `size: {height, width}`) or a resize of the shortest edge followed by a
centre crop (DINOv2's `shortest_edge` + `crop_size`). `crop_box` says which region of the
original picture the model saw, so overlays map back onto the picture the user uploaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class InputGeometry:
    """The model input `size` (height, width) and how a picture is brought to it.

    The picture is resized to `resize` (height, width) if given, else its shorter side to
    `shortest_edge` (aspect kept), else straight to `size`; then its centre `size` is cropped.
    """

    size: tuple[int, int]
    shortest_edge: int | None = None
    resample: int = Image.Resampling.BILINEAR
    resize: tuple[int, int] | None = None

    @classmethod
    def from_processor(cls, config: dict[str, Any], fallback: tuple[int, int]) -> InputGeometry:
        """Read an image processor config (`preprocessor_config.json`); `fallback` when it gives no size."""
        resample = int(config.get("resample", Image.Resampling.BILINEAR))
        size, crop = config.get("size") or {}, config.get("crop_size") or {}
        if isinstance(size, int):
            size = {"shortest_edge": size}
        fixed = (int(size["height"]), int(size["width"])) if "height" in size and "width" in size else None
        if config.get("do_center_crop") and "height" in crop:
            cropped = (int(crop["height"]), int(crop["width"]))
            if "shortest_edge" in size:
                return cls(cropped, int(size["shortest_edge"]), resample)
            if fixed is not None:
                return cls(cropped, None, resample, fixed)
        if fixed is not None:
            return cls((int(size["height"]), int(size["width"])), None, resample)
        return cls(fallback, None, resample)

    def scaled(self, side: int) -> InputGeometry:
        """The same recipe for a square input of `side` pixels (the crop margin keeps its ratio)."""
        ratio = side / min(self.size)
        edge = round(self.shortest_edge * ratio) if self.shortest_edge is not None else None
        resize = (round(self.resize[0] * ratio), round(self.resize[1] * ratio)) if self.resize else None
        return InputGeometry((side, side), edge, self.resample, resize)

    def resized_shape(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) a picture of (height, width) is resized to before the crop."""
        if self.resize is not None:
            return max(self.size[0], self.resize[0]), max(self.size[1], self.resize[1])
        if self.shortest_edge is None:
            return self.size
        scale = self.shortest_edge / min(height, width)
        return max(self.size[0], round(height * scale)), max(self.size[1], round(width * scale))

    def crop_box(self, height: int, width: int) -> tuple[float, float, float, float]:
        """The region (x0, y0, x1, y1) of a (height, width) picture, in its pixels, that the model sees."""
        rh, rw = self.resized_shape(height, width)
        top, left = (rh - self.size[0]) // 2, (rw - self.size[1]) // 2
        sy, sx = height / rh, width / rw
        return left * sx, top * sy, (left + self.size[1]) * sx, (top + self.size[0]) * sy

    def apply(self, picture: Image.Image) -> np.ndarray:
        """Return the model-input pixels of an RGB picture: uint8 (height, width, 3)."""
        rh, rw = self.resized_shape(picture.height, picture.width)
        if (picture.height, picture.width) != (rh, rw):
            picture = picture.resize((rw, rh), Image.Resampling(self.resample))
        top, left = (rh - self.size[0]) // 2, (rw - self.size[1]) // 2
        if (top, left) != (0, 0) or (rh, rw) != self.size:
            picture = picture.crop((left, top, left + self.size[1], top + self.size[0]))
        return np.asarray(picture, dtype=np.uint8)


def as_geometry(size: tuple[int, int] | InputGeometry) -> InputGeometry:
    """A plain (height, width) means a plain resize, as before geometries existed."""
    return size if isinstance(size, InputGeometry) else InputGeometry(tuple(size))  # type: ignore[arg-type]
