"""Model loading, token layout and the capture / intervention mechanism."""

from worker.models.hooks import Recording, intervene
from worker.models.layout import TokenLayout
from worker.models.loading import LoadedModel, load_model

__all__ = ["LoadedModel", "Recording", "TokenLayout", "intervene", "load_model"]
