"""Where head importance's exact re-check spends its time, and how tight its error bound is.

For finding costs; the bench is the reported figure. On the bench's 256 SynthScenes images
(random:vit-base, bfloat16 resumed passes), per batch size (64, 256), prints JSON lines with:
- the clean float32 pass, the bf16 resumed passes and each re-check stage (TF32, then float32)
  timed apart, with the copies each stage runs;
- how far every copy's bf16 decision margin is from its float32 one (the float32 schedule, TF32
  off) against the batch-wide bound the re-check uses (RECHECK_FACTOR x the batch's largest clean
  logit error) and a per-image one (the same factor x that image's own clean error): copies each
  rule re-checks, the largest error / bound ratio, and decisions that flip outside the bound.

    python3 vitscope/bench/gpu/recheck_parts.py [--model M] [--images N] [--device D]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from vitscope.bench.common import once_timed as timed
from vitscope.vit.models import LoadedModel, load_model


def main() -> None:
    from vitscope.bench.head_importance import preprocess, synth_images
    from vitscope.vit.analysis import head_importance as hi
    from vitscope.vit.analysis.precision import model_in

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="random:vit-base")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-sizes", default="64,256")
    args = parser.parse_args()
    lm = load_model(args.model, device=args.device)
    fast = model_in(lm, "bfloat16")
    images, labels = synth_images(lm, args.images)
    once = hi.CutsOnce()
    for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
        batches = preprocess(lm, images, labels, batch_size)
        one_batch(lm, fast, once, batches[0][0][:2], batches[0][1][:2])  # warm-up
        parts = [one_batch(lm, fast, once, pixels, target) for pixels, target in batches]
        totals = {k: sum(float(p[k]) for p in parts) for k in parts[0] if not k.startswith("ratio")}
        by_layer = torch.cat([p["ratio_image"] for p in parts]).amax(dim=(0, 2))  # type: ignore[misc]
        record = {
            "bench": "recheck-parts",
            "model": args.model,
            "images": args.images,
            "batch_size": batch_size,
            **totals,
            "recheck_factor": hi.RECHECK_FACTOR,
            "max_err_over_batch_error": max(float(p["ratio_batch"].max()) for p in parts),  # type: ignore[union-attr]
            "max_err_over_image_error": float(by_layer.max()),
            "max_err_over_image_error_by_layer": [round(float(v), 3) for v in by_layer],
            "device": torch.cuda.get_device_name() if lm.device.type == "cuda" else "cpu",
            "torch": torch.__version__,
        }
        print(json.dumps(record), flush=True)


def one_batch(
    lm: LoadedModel, fast: LoadedModel, once: Any, pixels: torch.Tensor, target: torch.Tensor
) -> dict[str, float | torch.Tensor]:
    """One batch's parts: seconds and copies of each stage, and each copy's bf16 margin error over the
    batch-wide and the per-image bound's error (`ratio_batch`, `ratio_image`, (B, L, H))."""
    from vitscope.vit.analysis import head_importance as hi
    from vitscope.vit.analysis.precision import tf32

    device = lm.device
    out: dict[str, float | torch.Tensor] = {}
    clean, out["clean_s"] = timed(lambda: hi.clean_pass(lm, pixels, target, False), device)
    grid = hi._Grid((clean.size, lm.num_layers, lm.num_heads), device)
    cuts, cuts32 = once.of(fast), once.of(lm)
    _, out["resumed_s"] = timed(lambda: hi.ablate_every_copy(fast, clean, grid, 1024, cuts), device)
    m16 = grid.values["margin"].clone()
    bound, out["clean_error_s"] = timed(lambda: hi._clean_error(fast, clean), device)
    near = m16.abs() <= hi.RECHECK_FACTOR * bound
    out["near"] = float(near.sum())
    if device.type == "cuda":
        with tf32():
            _, out["tf32_s"] = timed(lambda: hi._rerun(lm, clean, grid, near, 1024, cuts32), device)
            e32, out["tf32_error_s"] = timed(lambda: hi._clean_error(lm, clean), device)
        near &= grid.values["margin"].abs() <= hi.RECHECK_FACTOR * e32
        out["near_after_tf32"] = float(near.sum())
    _, out["fp32_s"] = timed(lambda: hi._rerun(lm, clean, grid, near, 1024, cuts32), device)
    exact = hi._Grid((clean.size, lm.num_layers, lm.num_heads), device)  # every copy in float32
    hi.ablate_every_copy(lm, clean, exact, 1024, cuts32)
    m32 = exact.values["margin"]
    err = (m16 - m32).abs()
    per_image = _per_image_error(fast, clean)[:, None, None]
    flips = (m16 > 0) != (m32 > 0)
    out["flips"] = float(flips.sum())
    out["near_image_rule"] = float((m16.abs() <= hi.RECHECK_FACTOR * per_image).sum())
    out["flips_outside_image_rule"] = float((flips & (m16.abs() > hi.RECHECK_FACTOR * per_image)).sum())
    out["copies"] = float(m16.numel())
    out["ratio_batch"], out["ratio_image"] = err / bound, err / per_image
    return out


@torch.no_grad()
def _per_image_error(fast: LoadedModel, clean: Any) -> torch.Tensor:
    """Each image's largest |logit| difference (B,) between `fast` and float32 on the clean batch."""
    from vitscope.vit.models import intervene

    with intervene(fast.parts, start=(0, clean.residuals[0].to(fast.dtype))):
        logits = fast.forward(fast.blank_pixels(clean.size))
    return (logits.float() - clean.logits).abs().amax(-1)


if __name__ == "__main__":
    main()
