"""Parameters of the `attention-profile` analysis."""

from typing import Literal

from pydantic import Field

from vitscope.contracts.params.base import Params


class AttentionProfileParams(Params):
    """Attention strength by Chebyshev ring, entropy, distance and sink share, streamed."""

    dtype: Literal["float32", "bfloat16"] = Field(
        default="float32", description="precision of the forward passes"
    )
    batch_size: int = Field(default=32, ge=1, le=4096, description="images per forward pass")
