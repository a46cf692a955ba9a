"""`vitscope bench heap`: CPU analyses with freed memory kept (`vitscope.vit.heap`) against glibc's default.

Which allocator behaviour a process has is set once for the whole process, so each side runs in a
fresh process of its own, the two alternating for `--rounds` rounds within one bench run: the
default side never calls `keep_freed_memory` (glibc as it comes), the kept side calls it first, as
the CLI and the worker do. Each side times, on the same SynthScenes images in the same order, a
plain float32 forward over `--images` images in batches of `--batch-size`, and the exact ablation of
every head (clean pass plus `ablate_batch`, as the head-importance job runs it) on the first
`--ablation-images`, counting the minor page faults of each, and its peak resident memory. The
summary gives each figure's median over the rounds and default / kept.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

from vitscope.bench.common import emit, environment

SIDES = ("default", "kept")
WORKLOADS = ("forward", "head_importance")


def register(sub: Any) -> None:
    """Add the `heap` benchmark."""
    p = sub.add_parser("heap", help="CPU analyses with freed memory kept for reuse vs glibc's default")
    p.add_argument("--model", default="random:vit-small")
    p.add_argument("--images", type=int, default=64, help="images of the timed forward")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--ablation-images", type=int, default=8, help="images whose every head is ablated")
    p.add_argument("--rounds", type=int, default=3, help="processes per side, alternating")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run both sides `rounds` times, alternating, each in a fresh process; print each and the summary."""
    lines: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    for round_ in range(args.rounds):
        for side in SIDES:
            line = _side_process(side, args)
            lines[side].append(line)
            emit({"bench": "heap-side", "round": round_, **line})
    summary: dict[str, Any] = {"bench": "heap", "model": args.model, "rounds": args.rounds}
    for work in WORKLOADS:
        for side in SIDES:
            summary[f"{work}_{side}_s"] = statistics.median(line[f"{work}_s"] for line in lines[side])
            summary[f"{work}_{side}_faults"] = statistics.median(
                line[f"{work}_faults"] for line in lines[side]
            )
        summary[f"{work}_speedup"] = summary[f"{work}_default_s"] / summary[f"{work}_kept_s"]
    for side in SIDES:
        summary[f"peak_rss_{side}_mb"] = statistics.median(line["peak_rss_mb"] for line in lines[side])
    emit({**summary, **environment("cpu")})
    return 0


def _side_process(side: str, args: argparse.Namespace) -> dict[str, Any]:
    argv = [
        sys.executable, "-m", __name__, side, args.model,
        str(args.images), str(args.batch_size), str(args.ablation_images),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"the {side} side failed: {done.stderr.strip().splitlines()[-1:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def side(name: str, model: str, images: int, batch_size: int, ablation_images: int) -> dict[str, Any]:
    """One side's figures, in this process (which must be fresh: see the module doc)."""
    from vitscope.vit.heap import keep_freed_memory

    kept = keep_freed_memory() if name == "kept" else False
    import torch

    from vitscope.bench.head_importance import preprocess, synth_images
    from vitscope.vit.analysis.head_importance import CutsOnce, ablate_batch, clean_pass
    from vitscope.vit.models import load_model

    lm = load_model(model, "cpu")
    pictures, labels = synth_images(lm, max(images, ablation_images))
    batches = preprocess(lm, pictures[:images], labels[:images], batch_size)
    (pixels, targets), *_ = preprocess(
        lm, pictures[:ablation_images], labels[:ablation_images], ablation_images
    )

    def forward() -> None:
        with torch.no_grad():
            for x, _ in batches:
                lm.forward(x)

    def head_importance() -> None:
        clean = clean_pass(lm, pixels, targets, taylor=False)
        ablate_batch(lm, lm, clean, chunk_size=1024, recheck=False, cuts=CutsOnce())

    figures: dict[str, Any] = {"side": name, "applied": kept, "model": model}
    for work, fn in (("forward", forward), ("head_importance", head_importance)):
        fn()  # warm-up: weights touched, caches and (kept) the heap grown
        faults, start = _faults(), time.perf_counter()
        fn()
        figures[f"{work}_s"] = time.perf_counter() - start
        figures[f"{work}_faults"] = _faults() - faults
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return figures


if __name__ == "__main__":
    name, model, images, batch, ablation = sys.argv[1:6]
    print(json.dumps(side(name, model, int(images), int(batch), int(ablation))))
