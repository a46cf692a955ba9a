"""What every benchmark shares: the environment record and a fair timer.

Timing follows the usual GPU method: warm-up runs first (compilation, caches, allocator),
then several repeats with the device synchronized around each, reporting the median.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def environment(device: str) -> dict[str, Any]:
    """Device name, library versions and date, recorded next to every figure."""
    import torch
    import transformers

    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor() or "cpu"
    return {
        "device": device,
        "device_name": name,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
        "cpu_threads": torch.get_num_threads(),
    }


def timed(fn: Callable[[], Any], device: str, warmup: int = 2, repeats: int = 5) -> float:
    """Median seconds of `fn()` over `repeats` runs after `warmup` runs, device-synchronized."""
    import torch

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def once_timed(fn: Callable[[], T], device: Any) -> tuple[T, float]:
    """`fn()` and the wall seconds of that one call, the device (a torch device or its name)
    synchronized before and after: for timing a part of a larger run, where no repeat is possible."""
    import torch

    cuda = str(device).startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if cuda:
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def emit(record: dict[str, Any]) -> None:
    """Print one JSON line to stdout (the benchmark's output format)."""
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def add_job_arguments(parser: Any, kind: str) -> None:
    """The options of a bench that times one job as a user would ask for it: `--kind` (default `kind`),
    `--model`, `--dataset` (1,000 SynthScenes images) and repeatable `--param KEY=VALUE`."""
    parser.add_argument("--kind", default=kind)
    parser.add_argument("--model", default="random:vit-base")
    parser.add_argument("--dataset", default="synthscenes:1000")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="JSON value")
