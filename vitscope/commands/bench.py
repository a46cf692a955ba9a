"""`vitscope bench NAME ...`: every benchmark module in `vitscope.bench` becomes a sub-command.

See `vitscope.bench` for how a benchmark registers itself.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from vitscope import bench


def register(sub: Any) -> None:
    """Add the `bench` command with one sub-command per module of `vitscope.bench` that has `register`."""
    p = sub.add_parser("bench", help="benchmarks (speed, load); each prints JSON")
    benches = p.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{bench.__name__}.{info.name}")
        if hasattr(module, "register"):  # helper modules (common.py) register nothing
            module.register(benches)
