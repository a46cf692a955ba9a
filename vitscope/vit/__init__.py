"""The ViT library: model loading and token layout, the capture / intervention mechanism, the
analyses and the data sources. Usable from a notebook, the CLI and the worker alike.

`from vitscope.vit import load_model, intervene` works; torch is imported on first use, so a
process that only names a submodule (the worker's parent) stays torch-free.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vitscope.vit.models import LoadedModel, Recording, TokenLayout, intervene, load_model

__all__ = ["LoadedModel", "Recording", "TokenLayout", "intervene", "load_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("vitscope.vit.models"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
