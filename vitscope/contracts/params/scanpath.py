"""Parameters of the `scanpath` analysis."""

from typing import Literal

from pydantic import Field

from vitscope.contracts.params.base import Params


class ScanpathParams(Params):
    """OAT scanpath prediction on an uploaded scene or built-in search scenes."""

    target: int | None = Field(None, ge=0, description="index of the target object (scene order)")
    boxes: tuple[tuple[float, float, float, float], ...] | None = Field(
        None, description="object boxes (x0, y0, x1, y1) in pixels; proposed from the ViT when omitted"
    )
    samples: int = Field(100, ge=1, le=1000, description="sampled scanpaths per scene for the density")
    decoding: Literal["sample", "greedy"] = Field("sample", description="how the shown scanpath is decoded")
    max_length: int = Field(40, ge=1, le=200)
    seed: int = 0
