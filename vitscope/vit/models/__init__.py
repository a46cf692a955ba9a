"""Model loading, token layout and the capture / intervention mechanism."""

from vitscope.vit.models.hooks import Recording, intervene
from vitscope.vit.models.layout import TokenLayout
from vitscope.vit.models.loading import LoadedModel, load_model

__all__ = ["LoadedModel", "Recording", "TokenLayout", "intervene", "load_model"]
