"""Parameter models of every job kind, one module each; `PARAMS` maps kind -> model."""

from typing import Literal

from vitscope.contracts.params.attention_patterns import AttentionPatternsParams
from vitscope.contracts.params.attention_profile import AttentionProfileParams
from vitscope.contracts.params.base import Params
from vitscope.contracts.params.eigencam import EigenCamParams
from vitscope.contracts.params.head_importance import HeadImportanceParams
from vitscope.contracts.params.scanpath import ScanpathParams

JobKind = Literal["head-importance", "attention-profile", "attention-patterns", "eigencam", "scanpath"]

PARAMS: dict[str, type[Params]] = {
    "head-importance": HeadImportanceParams,
    "attention-profile": AttentionProfileParams,
    "attention-patterns": AttentionPatternsParams,
    "eigencam": EigenCamParams,
    "scanpath": ScanpathParams,
}

__all__ = ["PARAMS", "JobKind", "Params"]
