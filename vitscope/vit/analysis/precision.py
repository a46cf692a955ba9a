"""Running an analysis's bulk passes in a lower precision without touching the shared model.

A worker keeps one float32 `LoadedModel` per process, so an analysis that wants bfloat16
passes works on a cast copy (`copy.deepcopy` keeps `parts` pointing at the copy's own
modules) rather than casting the shared model in place, which could not be undone exactly.
A cast copy runs faster than autocast (no per-op casts of activations) at the price of a
bfloat16 residual stream; analyses that need float32 decisions re-check them on the original.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from vitscope.vit.models import LoadedModel

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def model_in(lm: LoadedModel, dtype: str | torch.dtype) -> LoadedModel:
    """Return `lm` itself when it already runs in `dtype`, else a copy cast to `dtype` on the same device."""
    target = DTYPES[dtype] if isinstance(dtype, str) else dtype
    if lm.dtype == target:
        return lm
    cast = copy.deepcopy(lm)
    return cast.to(lm.device, target)


@contextmanager
def tf32() -> Iterator[None]:
    """Float32 matrix products in TF32 inside the block (CUDA), restoring the setting after."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


@contextmanager
def exact_sums() -> Iterator[None]:
    """Half-precision matrix products inside the block sum in float32 throughout (CUDA): cuBLAS may
    otherwise reduce split-K partial sums in the half-precision type, restoring the settings after."""
    matmul = torch.backends.cuda.matmul
    before = matmul.allow_bf16_reduced_precision_reduction, matmul.allow_fp16_reduced_precision_reduction
    matmul.allow_bf16_reduced_precision_reduction = matmul.allow_fp16_reduced_precision_reduction = False
    try:
        yield
    finally:
        matmul.allow_bf16_reduced_precision_reduction, matmul.allow_fp16_reduced_precision_reduction = before
