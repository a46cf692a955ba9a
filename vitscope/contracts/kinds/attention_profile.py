"""Parameters of the `attention-profile` analysis."""

from typing import Literal

from pydantic import Field

from vitscope.contracts.kinds.base import ArraySpec, ImageParams, Kind, Summary


class AttentionProfileParams(ImageParams):
    """Attention strength by Chebyshev ring, entropy, distance and sink share, streamed."""

    dtype: Literal["float32", "bfloat16"] = Field(
        default="float32", description="precision of the forward passes"
    )
    batch_size: int = Field(default=32, ge=1, le=4096, description="images per forward pass")


class AttentionProfileSummary(Summary):
    """Ring geometry and the entropy trend over layers."""

    images: int
    rings: int = Field(description="Chebyshev rings around a patch query")
    rings_cls: int = Field(description="rings around the grid centre, for the CLS query")
    ring_sizes: list[float] = Field(description="patches per ring (mean over queries)")
    max_entropy: float
    max_entropy_cls: float
    entropy_by_layer: list[float]
    entropy_cls_by_layer: list[float]
    grid: list[int]
    patch_size: int


KIND = Kind(
    name="attention-profile",
    title="Attention profile",
    help="attention strength by n-hop ring, entropy, mean distance and sink share per head, streamed",
    params=AttentionProfileParams,
    summary=AttentionProfileSummary,
    results={
        "ring_strength_patch": ArraySpec(("L", "H", "R"), "float", "patch queries' attention per ring"),
        "ring_strength_cls": ArraySpec(("L", "H", "Rc"), "float", "the CLS query's attention per ring"),
        "entropy_patch": ArraySpec(("L", "H"), "float", "entropy over rings, patch queries"),
        "entropy_cls": ArraySpec(("L", "H"), "float", "entropy over rings, CLS query"),
        "entropy_per_image": ArraySpec(("N", "L", "H"), "float"),
        "entropy_per_image_cls": ArraySpec(("N", "L", "H"), "float"),
        "mean_distance_px": ArraySpec(("L", "H"), "float", "mean attention distance in pixels"),
        "sink_share": ArraySpec(("L", "H"), "float", "share of attention on prefix tokens"),
    },
    run="vitscope.vit.analysis.attention_profile:run",
    page="/heads",
    url_key="ap",
    order=1,
)
