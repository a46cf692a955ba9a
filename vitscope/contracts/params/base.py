"""Base for analysis parameters: strict (unknown names refused), frozen, JSON-able."""

from pydantic import BaseModel, ConfigDict


class Params(BaseModel):
    """Parameters of one analysis kind. Unknown fields are refused with their name."""

    model_config = ConfigDict(extra="forbid", frozen=True)
