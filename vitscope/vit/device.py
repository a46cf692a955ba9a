"""Which torch device a `device` setting means."""

from __future__ import annotations


def resolve_device(setting: str) -> str:
    """Return the torch device for a `device` setting: 'auto' means cuda when available, else cpu."""
    if setting != "auto":
        return setting
    import torch  # only here, in the process that will run the model: a worker's parent never calls this

    return "cuda" if torch.cuda.is_available() else "cpu"
