"""OAT scanpath prediction: the model, a simulated searcher, baselines, metrics, data loaders.

Torch is only imported by `model`, `decoding`, `batching`, `train` and `evaluate`; the rest is
numpy.
"""

from pathlib import Path

SHIPPED_CHECKPOINT = Path(__file__).parent / "checkpoint"
"""Folder of the shipped checkpoint (config.json + model.safetensors)."""
