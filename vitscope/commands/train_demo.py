"""`vitscope train-demo`: reproduce the shipped demo ViT (train it on a GPU)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    """Add the `train-demo` sub-command."""
    p = sub.add_parser("train-demo", help="train the demo ViT on SynthScenes (use a GPU)")
    p.add_argument("--out", type=Path, default=Path("vitscope/vit/models/demo"), help="output folder")
    p.add_argument("--device", default="cuda")
    p.add_argument("--workers", type=int, default=8, help="data-generation processes")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from vitscope.vit.training.demo import DemoRecipe, train

    overrides = {
        f.name: getattr(args, f.name) for f in fields(DemoRecipe) if getattr(args, f.name, None) is not None
    }
    metrics = train(DemoRecipe(**overrides), args.out, device=args.device, workers=args.workers)
    if args.json:
        json.dump(metrics, sys.stdout)
        sys.stdout.write("\n")
    return 0
