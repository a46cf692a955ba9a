"""A kind declared outside vitscope, as a module named in `VITSCOPE_EXTRA_KINDS` would be.

The dashboard has no page for it (`/norms` does not exist), the fake API has no tuned values
for it: the tests use it to check that a new kind is launchable, shown on the generic `/job`
page, and gets schema-valid fake results from its declaration alone.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vitscope.contracts.kinds import ArraySpec, Kind, Params, Summary


class TokenNormsParams(Params):
    """Which layers to measure, and on which scale."""

    layers: tuple[int, ...] | None = Field(default=None, description="layers to measure; all when omitted")
    scale: Literal["linear", "log"] = "linear"
    batch_size: int = Field(default=8, ge=1, le=256)


class TokenNormsSummary(Summary):
    """A field of every kind the summary generator has to handle."""

    images: int
    mean_norm: float | None
    layers: list[int]
    per_layer: dict[str, float]
    scale: Literal["linear", "log"]
    grid: tuple[int, int]
    note: str


KIND = Kind(
    name="token-norms",
    title="Token norms",
    help="the norm of every token's residual stream, per layer",
    params=TokenNormsParams,
    summary=TokenNormsSummary,
    results={
        "norms": ArraySpec(("N", "L", "T"), "float", "norm per image, layer and token"),
        "peak": ArraySpec(("N?", "L"), "int", "token of the largest norm"),
        "codes": ArraySpec(("N", 7), "uint8"),
        "kept": ArraySpec(("tokens",), "int8", "tokens kept per layer"),
        "mask": ArraySpec(("h", "w"), "bool", "patches above the median", optional=True),
    },
    run="tests.frontend.extra_kind:run",
    page="/norms",
    url_key="job",
    order=50,
    default_launch=False,
)
