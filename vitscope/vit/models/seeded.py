"""Seeded random weights, drawn once per machine and then read back bit for bit.

`random:<family>-<size>` models and Eigen-CAM's randomized copies are a model class's own
initialisation under a fixed seed, drawn on the CPU so that every device gets the same numbers.
Drawing is slow: torch's CPU generator is sequential and a ViT-B initialises every Linear twice
(PyTorch's default, then the class's own), about 1.3 s per model on an H200 host, most of a
`vitscope run`'s model start-up. What comes out depends only on the class, its config, the seed,
the torch and transformers versions and the CPU's kernels, so it is kept as safetensors under a hash
of those in `$VITSCOPE_CACHE_DIR/models/seeded/` and the next process reads it instead.

Reading builds the model on the meta device (no initialisation) and puts the file's tensors in
place of every parameter and buffer; a file that does not name each of them, with its shape and
dtype, is drawn again. Writing is best effort (an unwritable cache only costs the next process the
draw) and atomic (a temporary file renamed into place), so concurrent workers never read half a file.

The folder is bounded: `$VITSCOPE_SEEDED_CACHE_GB` (default 4; 0 keeps nothing) is what its files
may take together. Every model a user names and every seed Eigen-CAM's randomized copy is asked for
is a file the size of the model (344 MB for ViT-B), so a shared deployment would otherwise fill its
disk. Keeping a file removes the least recently used others (a read touches its file) until the
folder fits; a file larger than the whole bound is not kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import transformers
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import PretrainedConfig, PreTrainedModel

from vitscope.contracts.errors import UserError
from vitscope.vit.models.cache import cache_root

log = logging.getLogger(__name__)

FORMAT = 1
"""Bumped when what a file holds changes."""

DEFAULT_BUDGET_GB = 4.0
"""What the kept files may take together when `$VITSCOPE_SEEDED_CACHE_GB` is not set (11 ViT-B models)."""


def budget_bytes() -> int:
    """`$VITSCOPE_SEEDED_CACHE_GB` (default `DEFAULT_BUDGET_GB`) in bytes; `UserError` for a bad value."""
    text = os.environ.get("VITSCOPE_SEEDED_CACHE_GB", "").strip()
    try:
        gigabytes = float(text) if text else DEFAULT_BUDGET_GB
    except ValueError:
        gigabytes = -1.0
    if not 0 <= gigabytes < math.inf:
        raise UserError(f"VITSCOPE_SEEDED_CACHE_GB must be a number of gigabytes >= 0, got {text!r}")
    return int(gigabytes * 1e9)


def build(cls: type[PreTrainedModel], config: PretrainedConfig, seed: int) -> PreTrainedModel:
    """`cls(config)` initialised under `torch.manual_seed(seed)` on the CPU (the global generator's
    state restored after), in eval mode; read from the cache when this machine drew it before."""
    budget = budget_bytes()
    path = cache_root() / "models" / "seeded" / f"{key(cls, config, seed)}.safetensors"
    if path.is_file():
        try:
            model = _read(cls, config, path).eval()
        except (OSError, SafetensorError, ValueError) as exc:
            log.warning("seeded weights %s unreadable (%s): drawing them again", path.name, exc)
        else:
            with contextlib.suppress(OSError):  # recently used: the last to be removed
                os.utime(path)
            return model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(config)
    _write(model, path, budget)
    return model.eval()


def key(cls: type[PreTrainedModel], config: PretrainedConfig, seed: int) -> str:
    """The hash that names a class, config and seed's weights drawn by these library versions on this CPU."""
    described = {
        "format": FORMAT,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "config": config.to_dict(),
        "seed": seed,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu": torch.backends.cpu.get_cpu_capability(),
    }
    text = json.dumps(described, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer by name (non-persistent buffers too: a state dict leaves them out)."""
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


def _read(cls: type[PreTrainedModel], config: PretrainedConfig, path: Path) -> PreTrainedModel:
    """The model with every parameter and buffer from `path`; `ValueError` if the file does not fit it."""
    stored = load_file(path)
    with torch.device("meta"):
        model = cls(config)
    wanted = _tensors(model)
    if set(stored) != set(wanted):
        raise ValueError(f"names differ ({len(stored)} stored, {len(wanted)} in the model)")
    for name, tensor in wanted.items():
        if stored[name].shape != tensor.shape or stored[name].dtype != tensor.dtype:
            raise ValueError(
                f"{name} is {stored[name].dtype} {tuple(stored[name].shape)}, not {tensor.dtype} {tuple(tensor.shape)}"
            )
    persistent = set(model.state_dict())
    model.load_state_dict({name: stored[name] for name in persistent}, strict=True, assign=True)
    for name in set(wanted) - persistent:  # buffers a state dict leaves out
        owner, _, leaf = name.rpartition(".")
        model.get_submodule(owner).register_buffer(leaf, stored[name], persistent=False)
    return model


def _write(model: torch.nn.Module, path: Path, budget: int) -> None:
    """Keep `model`'s parameters and buffers at `path` within `budget` bytes for the folder (`_prune`);
    a failure is logged, never raised."""
    tensors: dict[str, Any] = {name: t.detach().contiguous() for name, t in _tensors(model).items()}
    size = sum(t.numel() * t.element_size() for t in tensors.values())
    if size > budget:
        log.info("seeded weights not kept: %d MB is over VITSCOPE_SEEDED_CACHE_GB", size // 10**6)
        return
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        save_file(tensors, tmp)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the file from another user of a shared cache
        os.replace(tmp, path)
        tmp = None
        _prune(path, budget)
    except (OSError, RuntimeError, ValueError) as exc:  # read-only cache, full disk, shared tensors
        log.info("seeded weights not kept (%s): the next process draws them again", exc)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _prune(kept: Path, budget: int) -> None:
    """Remove the least recently used files beside `kept` until the folder's files fit in `budget` bytes."""
    found = []
    for path in kept.parent.glob("*.safetensors"):
        with contextlib.suppress(FileNotFoundError):  # another process removed it meanwhile
            stat = path.stat()
            found.append((path == kept, stat.st_mtime, stat.st_size, path))
    total = 0
    for is_kept, _, size, path in sorted(found, reverse=True):  # the new file first, then the newest
        total += size
        if total > budget and not is_kept:
            path.unlink(missing_ok=True)
            total -= size
            log.info("seeded weights %s removed: the folder is over VITSCOPE_SEEDED_CACHE_GB", path.name)
