"""Parameters of the `scanpath` analysis."""

from typing import Annotated, Any, Literal

from pydantic import Field

from vitscope.contracts.datasets import MAX_OBJECTS
from vitscope.contracts.kinds.base import MAX_SEED, ArraySpec, Kind, Params, Summary

MAX_BOXES = MAX_OBJECTS
"""The most object boxes one scene may have (OAT's shelves have 84)."""
MAX_COORD = 1e6
"""The largest box coordinate in pixels (an uploaded image has at most 40 MP, any aspect)."""
Coord = Annotated[float, Field(ge=-MAX_COORD, le=MAX_COORD, allow_inf_nan=False)]


class ScanpathParams(Params):
    """OAT scanpath prediction on an uploaded scene or built-in search scenes."""

    target: int | None = Field(
        None, ge=0, lt=MAX_BOXES, description="index of the target object (scene order)"
    )
    boxes: tuple[tuple[Coord, Coord, Coord, Coord], ...] | None = Field(
        None,
        max_length=MAX_BOXES,
        description="object boxes (x0, y0, x1, y1) in pixels; proposed from the ViT when omitted",
    )
    samples: int = Field(100, ge=1, le=1000, description="sampled scanpaths per scene for the density")
    decoding: Literal["sample", "greedy"] = Field("sample", description="how the shown scanpath is decoded")
    max_length: int = Field(40, ge=1, le=200)
    seed: int = Field(0, ge=0, le=MAX_SEED, description="seed of the sampled scanpaths")


class ScanpathSummary(Summary):
    """Per scene its target and decoded scanpath with behaviour statistics, and their mean."""

    scenes: int
    target: list[int]
    grid: list[int] | None
    scanpaths: list[dict[str, Any]]
    behaviour: dict[str, float]


KIND = Kind(
    name="scanpath",
    title="Scanpath (OAT)",
    help="predicted human gaze scanpaths during visual search, with the sampled fixation density",
    params=ScanpathParams,
    summary=ScanpathSummary,
    results={
        "boxes": ArraySpec(("N?", "objects", 4), "float", "object boxes (x0, y0, x1, y1) in pixels"),
        "scanpath": ArraySpec(("N?", "steps"), "int", "fixated object per step, -1 after the end"),
        "probabilities": ArraySpec(("N?", "steps"), "float"),
        "density": ArraySpec(("N?", "objects"), "float", "share of sampled fixations per object"),
        "targets": ArraySpec(("N?",), "int"),
        "image": ArraySpec(("N?", "height", "width", 3), "uint8", optional=True),
    },
    run="vitscope.scanpath.job:run",
    open_source="vitscope.scanpath.job:open_source",
    page="/scanpath",
    url_key="job",
    order=4,
    default_launch=False,
    example_inputs={"dataset": "synthsearch:4:seed=0"},
)
