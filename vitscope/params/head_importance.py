"""Parameters of the `head-importance` analysis."""

from typing import Literal

from pydantic import Field

from vitscope.params.base import Params


class HeadImportanceParams(Params):
    """Exact single-head ablation over a dataset, partial pruning of one head, Taylor estimate."""

    dtype: Literal["float32", "bfloat16"] = "float32"
    batch_size: int = Field(64, ge=1, le=4096)
    taylor: bool = Field(True, description="also compute the one-backward-pass gradient estimate")
    partial_layer: int | None = Field(None, ge=0, description="layer of the head to prune partially")
    partial_head: int | None = Field(None, ge=0, description="head to prune partially")
    partial_images: tuple[int, ...] = Field((0,), description="dataset indices for partial pruning")
