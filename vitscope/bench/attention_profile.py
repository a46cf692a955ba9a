"""`vitscope bench attention-profile`: the streamed profile vs a plain SDPA forward.

Every side runs the same model in the same dtype over the same preprocessed SynthScenes
batches: the plain forward uses the fused SDPA kernel and keeps nothing; the profile runs
as the analysis does (on CUDA: queries and keys reduced by the fused Triton kernel, layers
on SDPA), and, where the kernel runs, also the materialised path (every layer's
probabilities written out and reduced by a ring GEMM) for comparison. The JSON line carries
the throughputs, `speedup` (the profile's throughput over the plain forward's: 1.0 = free)
and, with both paths, the largest difference between their results.
"""

from __future__ import annotations

import argparse
from typing import Any

from vitscope.bench.common import emit, environment, timed


def register(sub: Any) -> None:
    """Add the `attention-profile` benchmark."""
    p = sub.add_parser("attention-profile", help="streamed attention profile vs plain SDPA forward")
    p.add_argument("--model", default="random:vit-base")
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Time every side over the same batches in the same process; print one JSON line."""
    import numpy as np
    import torch

    from vitscope.bench.head_importance import synth_images
    from vitscope.vit.analysis import fused_rings
    from vitscope.vit.analysis.attention_profile import ProfileAccumulator, profile_batch, profile_result
    from vitscope.vit.analysis.precision import model_in
    from vitscope.vit.analysis.rings import RingGeometry
    from vitscope.vit.models import load_model

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    lm = model_in(load_model(args.model, device=device), args.dtype)
    images, _ = synth_images(lm, args.images)
    batches = [lm.preprocess(images[s : s + args.batch_size]) for s in range(0, len(images), args.batch_size)]
    geo = RingGeometry.build(lm.layout, lm.device, lm.dtype)

    def plain() -> None:
        with torch.no_grad():
            for pixels in batches:
                lm.forward(pixels)

    def profile(fused: bool) -> dict[str, np.ndarray]:
        acc = ProfileAccumulator(geo, lm.num_layers, lm.num_heads, lm.device)
        for pixels in batches:
            profile_batch(lm, pixels, acc, fused=fused)
        return profile_result(acc).arrays  # includes the copy of the results to the host

    fused = fused_rings.available(lm.device)
    n = len(images)
    t_plain = timed(plain, device, warmup=1, repeats=args.repeats)
    t_profile = timed(lambda: profile(fused), device, warmup=1, repeats=args.repeats)
    line: dict[str, Any] = {
        "bench": "attention-profile",
        "model": args.model,
        "images": n,
        "batch_size": args.batch_size,
        "dtype": args.dtype,
        "reduction": "fused" if fused else "materialised",
        "plain_sdpa_images_per_s": n / t_plain,
        "profile_images_per_s": n / t_profile,
        "speedup": t_plain / t_profile,
    }
    if fused:
        t_materialised = timed(lambda: profile(False), device, warmup=1, repeats=args.repeats)
        a, b = profile(True), profile(False)
        line["materialised_images_per_s"] = n / t_materialised
        line["materialised_speedup"] = t_plain / t_materialised
        line["max_abs_diff_vs_materialised"] = {k: float(np.abs(a[k] - b[k]).max()) for k in sorted(a)}
    emit({**line, **environment(device)})
    return 0
