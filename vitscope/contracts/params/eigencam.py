"""Parameters of the `eigencam` analysis."""

from typing import Literal

from pydantic import Field

from vitscope.contracts.params.base import Params

SignRule = Literal["skew", "extreme", "norm"]


class EigenCamParams(Params):
    """Eigen-CAM on every layer (or `layers`), with baselines and the randomized-weights check."""

    layers: tuple[int, ...] | None = Field(default=None, description="layers to map; all when omitted")
    baselines: bool = Field(default=True, description="also compute attention rollout and Grad-CAM")
    sanity_check: bool = Field(default=True, description="also map a random-weights copy and rank-correlate")
    second_component: bool = Field(default=False, description="also return the second principal component")
    batch_size: int = Field(default=32, ge=1, le=1024)
    sign_rule: SignRule = Field(
        default="skew",
        description=(
            "how the arbitrary sign of the principal component is fixed: 'skew' makes the heavier "
            "tail positive (the smaller region, usually the object), 'extreme' makes |max| >= |min| "
            "(pytorch-grad-cam's sign-corrected variant), 'norm' correlates with the patch-token norm"
        ),
    )
    relu: bool = Field(
        default=True,
        description=(
            "clip the oriented projection at 0 before min-max scaling, as pytorch-grad-cam does; "
            "false keeps the negative side (min-max of the whole projection)"
        ),
    )
    gradcam_layer: int | None = Field(
        default=None, description="block whose output Grad-CAM uses; default the layer before the last"
    )
    random_seed: int = Field(
        default=0, ge=0, description="seed of the random-weights copy for the sanity check"
    )
