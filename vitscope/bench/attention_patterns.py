"""`vitscope bench attention-patterns`: the whole pattern analysis, timed end to end.

One run of `vitscope.vit.analysis.attention_patterns.run` on the first N SynthScenes images, as
`vitscope run attention-patterns` would do it: image generation, the sampling pass, both
autoencoders and the summaries. The model is loaded (and the device initialised) before the
clock starts; that time is reported apart as `load_seconds`. The JSON line carries the wall
time, the time per phase, the held-out errors of the autoencoder and PCA per query type,
and the environment. Target: random:vit-base, 1000 images, one H200, default params, <= 60 s.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from vitscope.bench.common import emit, environment


def register(sub: Any) -> None:
    """Add the `attention-patterns` benchmark."""
    p = sub.add_parser("attention-patterns", help="time the whole attention-patterns analysis")
    p.add_argument("--model", default="random:vit-base")
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument("--seed", type=int, default=0, help="SynthScenes seed")
    p.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="analysis parameter (JSON value)"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Load the model, time one run of the analysis, print one JSON line; return 0."""
    import torch

    from vitscope.commands.run import parse_params
    from vitscope.contracts.kinds.attention_patterns import AttentionPatternsParams
    from vitscope.vit.analysis.attention_patterns import run as analyse
    from vitscope.vit.data.inputs import SynthSource
    from vitscope.vit.models import load_model

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    params = AttentionPatternsParams(**parse_params(args.param))
    start = time.perf_counter()
    torch.manual_seed(0)  # random:* weights
    lm = load_model(args.model, device=device)
    loaded = time.perf_counter()
    phases = PhaseClock()
    result = analyse(lm, SynthSource(args.images, args.seed), params, phases)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    done = time.perf_counter()
    s = result.summary
    emit(
        {
            "bench": "attention-patterns",
            "model": args.model,
            "images": args.images,
            "seconds": done - loaded,
            "load_seconds": loaded - start,
            "phases": phases.durations(done),
            **{
                key: s[key]
                for key in ("ae_error", "pca_error", "ae_beats_pca", "best_epoch", "maps_per_head")
            },
            "params": params.model_dump(),
            **environment(device),
        }
    )
    return 0


class PhaseClock:
    """A progress callback that notes when each phase (the message's first word) first reports."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.firsts: dict[str, float] = {}

    def __call__(self, _fraction: float, message: str) -> None:
        """Record the first time a message of this phase arrives."""
        phase = message.split(" ", 1)[0]
        self.firsts.setdefault(phase, time.perf_counter())

    def durations(self, end: float) -> dict[str, float]:
        """Seconds from each phase's first report to the next phase's first report (the last: to `end`)."""
        names = list(self.firsts)
        bounds = [self.start, *(self.firsts[n] for n in names[1:]), end]
        return {name: bounds[i + 1] - bounds[i] for i, name in enumerate(names)}
