"""Parameter models of every job kind, one module each; `PARAMS` maps kind -> model."""

from typing import Literal

from vitscope.params.attention_patterns import AttentionPatternsParams
from vitscope.params.attention_profile import AttentionProfileParams
from vitscope.params.base import Params
from vitscope.params.eigencam import EigenCamParams
from vitscope.params.head_importance import HeadImportanceParams
from vitscope.params.scanpath import ScanpathParams

JobKind = Literal["head-importance", "attention-profile", "attention-patterns", "eigencam", "scanpath"]

PARAMS: dict[str, type[Params]] = {
    "head-importance": HeadImportanceParams,
    "attention-profile": AttentionProfileParams,
    "attention-patterns": AttentionPatternsParams,
    "eigencam": EigenCamParams,
    "scanpath": ScanpathParams,
}

__all__ = ["PARAMS", "JobKind", "Params"]
