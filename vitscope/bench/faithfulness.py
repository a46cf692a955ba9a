"""`vitscope bench faithfulness`: the deletion / insertion and box scores an Eigen-CAM job adds.

What the job computes per batch with `faithfulness` on (`faithfulness.batch_scores`): every
method's map (Eigen-CAM of each layer, rollout, Grad-CAM, a random map and the centre prior)
ranked, then one forward per curve step of all B x methods x 2 perturbed images, plus mass in
box and the pointing game against SynthScenes' boxes. The maps are computed before the clock
starts (that is the Eigen-CAM pass, timed by `vitscope bench eigencam`), so the figure is the
cost faithfulness adds to a job. The same run also times the plain forward of the same images in
the same dtype, so the perturbation passes can be read as forwards per second against it.
"""

from __future__ import annotations

import argparse
from typing import Any

from vitscope.bench.common import emit, environment, timed

TARGET_S = 10.0


def register(sub: Any) -> None:
    """Add the `faithfulness` benchmark."""
    p = sub.add_parser("faithfulness", help="deletion / insertion AUC and box scores of every CAM method")
    p.add_argument("--model", default="random:vit-base")
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=64, help="the job's batch size")
    p.add_argument("--steps", type=int, default=8, help="steps of the deletion and insertion curves")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    p.add_argument("--repeats", type=int, default=3)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Time the faithfulness scores of `--images` SynthScenes images and the plain forward; print JSON."""
    import numpy as np
    import torch

    from vitscope.contracts.kinds.eigencam import EigenCamParams
    from vitscope.vit.analysis import faithfulness
    from vitscope.vit.analysis.eigencam import Settings, analyse_batch
    from vitscope.vit.data.inputs import SynthSource
    from vitscope.vit.models import load_model

    lm = load_model(args.model, device=args.device)
    lm.to(args.device, getattr(torch, args.dtype))
    settings = Settings.of(lm, EigenCamParams(sanity_check=False))
    batches = list(SynthSource(args.images, seed=0).batches(args.batch_size, lm.input_geometry))
    pixels = [lm.preprocess(b.images).to(lm.dtype) for b in batches]
    maps = [analyse_batch(lm, x, settings) for x in pixels]
    found: list[dict[str, Any]] = []

    def scores() -> None:
        found[:] = [
            faithfulness.batch_scores(lm, x, m, b, args.steps, seed=0)
            for x, m, b in zip(pixels, maps, batches, strict=True)
        ]

    def forward() -> None:
        with torch.no_grad():
            for x in pixels:
                lm.forward(x)

    t_forward = timed(forward, args.device, repeats=args.repeats)
    t_scores = timed(scores, args.device, warmup=1, repeats=args.repeats)
    methods = found[0]["deletion_auc"].shape[1]
    steps = found[0]["deletion_curve"].shape[2] - 1
    forwards = args.images * (2 + 2 * methods * (steps - 1))  # the two shared ends, then 2 x methods a step
    names = faithfulness.method_names(settings.layers, settings.rollout, settings.gradcam_layer is not None)
    deletion = np.concatenate([f["deletion_auc"] for f in found]).mean(0)
    insertion = np.concatenate([f["insertion_auc"] for f in found]).mean(0)
    emit(
        {
            "bench": "faithfulness",
            "model": args.model,
            "images": args.images,
            "batch_size": args.batch_size,
            "steps": steps,
            "methods": names,
            "dtype": args.dtype,
            "faithfulness_s": t_scores,
            f"under_{TARGET_S:g}_s": t_scores < TARGET_S,
            "perturbed_forwards": forwards,
            "perturbed_img_per_s": forwards / t_scores,
            "plain_forward_img_per_s": args.images / t_forward,
            "mean_deletion_auc": dict(zip(names, deletion.round(4).tolist(), strict=True)),
            "mean_insertion_auc": dict(zip(names, insertion.round(4).tolist(), strict=True)),
            **environment(args.device),
        }
    )
    return 0
