"""Which torch device a `device` setting means."""

from __future__ import annotations


def resolve_device(setting: str) -> str:
    """Return the torch device for a `device` setting: 'auto' means cuda when available, else cpu."""
    if setting != "auto":
        return setting
    import torch  # only here, in the process that will run the model: a worker's parent never calls this

    return "cuda" if torch.cuda.is_available() else "cpu"


def start_in_background(device: str) -> None:
    """Create CUDA's context for `device` on a daemon thread, so that it overlaps whatever the caller
    imports next (about 0.4 s on an H200 host), and with it cuBLAS's handle and workspace (a small
    float32 and bfloat16 product: the model's first pass would pay for them); nothing for a CPU.

    A device that cannot start is left for the model's load to report: that is where the error reaches
    the user as one readable line, so the thread keeps quiet about it.
    """
    if not device.startswith("cuda"):
        return
    import contextlib
    import threading

    import torch

    def start() -> None:
        # no CUDA build, no such device, a bad index: the load raises it again, readably
        with contextlib.suppress(RuntimeError, AssertionError, ValueError):
            square = torch.ones(16, 16, device=device)
            square @ square
            square.bfloat16() @ square.bfloat16()
            torch.cuda.synchronize(device)

    threading.Thread(target=start, name="cuda-start", daemon=True).start()
