"""Parameters of the `eigencam` analysis."""

from pydantic import Field

from vitscope.params.base import Params


class EigenCamParams(Params):
    """Eigen-CAM on every layer (or `layers`), with baselines and the randomized-weights check."""

    layers: tuple[int, ...] | None = Field(None, description="layers to map; all when omitted")
    baselines: bool = Field(True, description="also compute attention rollout and Grad-CAM")
    sanity_check: bool = Field(True, description="also map a random-weights copy and rank-correlate")
    second_component: bool = Field(False, description="also return the second principal component")
    batch_size: int = Field(32, ge=1, le=1024)
