"""Parameters of the `attention-profile` analysis."""

from typing import Literal

from pydantic import Field

from vitscope.params.base import Params


class AttentionProfileParams(Params):
    """Attention strength by Chebyshev ring, entropy, distance and sink share, streamed."""

    dtype: Literal["float32", "bfloat16"] = "float32"
    batch_size: int = Field(32, ge=1, le=4096)
    entropy_bins: int = Field(30, ge=5, le=200)
