"""Parameters of the `head-importance` analysis."""

from typing import Annotated, Literal

from pydantic import Field

from vitscope.contracts.params.base import Params


class HeadImportanceParams(Params):
    """Exact single-head ablation over a dataset, partial pruning of one head, Taylor estimate."""

    dtype: Literal["float32", "bfloat16"] = Field(
        default="float32",
        description="precision of the resumed ablation passes (the bulk of the work); the clean pass, "
        "gradients and partial pruning always run in float32",
    )
    batch_size: int = Field(default=64, ge=1, le=4096, description="images per clean pass")
    chunk_size: int = Field(
        default=1024,
        ge=1,
        le=65536,
        description="ablated copies (image x head) per resumed pass; bounds memory",
    )
    recheck: bool = Field(
        default=True,
        description="with bfloat16, re-run in float32 every ablated image whose top-1 decision is a "
        "near tie, so accuracy drops equal the float32 ones",
    )
    taylor: bool = Field(default=True, description="also compute the one-backward-pass gradient estimate")
    partial_layer: int | None = Field(
        default=None,
        ge=0,
        description="layer of the head to prune partially (default: the most important head)",
    )
    partial_head: int | None = Field(
        default=None,
        ge=0,
        description="head to prune partially (default: the most important head of the layer)",
    )
    partial_images: tuple[Annotated[int, Field(ge=0)], ...] = Field(
        default=(0,), max_length=64, description="dataset indices of the images pruned partially"
    )
