"""`vitscope bench head-importance`: exact head ablation (resumed, folded) vs the naive loop.

Every side ablates every head on the same preprocessed SynthScenes batches in one process:
the naive loop runs one full forward over the dataset per head; vitscope's schedule runs one
clean float32 pass per batch and resumes every ablated copy from the cached residual stream,
image x head copies folded into the batch, in `--dtype`.

The first JSON line compares vitscope with the naive loop in the same dtype (`speedup`; a
bfloat16 schedule against a float32 loop would credit the schedule with the precision), and
carries the minimum FLOP count of the schedule, the TFLOP/s achieved against it and the
fraction of the bfloat16 peak. The second line compares with the float32 naive loop (TF32
off), whose accuracy drops are the exact answer: `accuracy_drop_max_abs_diff_pp` must be 0.
A third line times the whole analysis (`run`, with the Taylor backward pass).
"""

from __future__ import annotations

import argparse
from typing import Any

from vitscope.bench.common import emit, environment, timed

PEAK_BF16_TFLOPS = {"H200": 790.0, "H100": 790.0}
"""Dense bfloat16 tensor-core peak used for the achieved fraction (device name contains the key)."""


def peak_bf16_tflops(device_name: str) -> float | None:
    """The `PEAK_BF16_TFLOPS` of a device by its name; None for a device not listed."""
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in device_name), None)


def register(sub: Any) -> None:
    """Add the `head-importance` benchmark."""
    p = sub.add_parser("head-importance", help="exact head ablation (resumed, folded) vs the naive loop")
    p.add_argument("--model", default="random:vit-base")
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument(
        "--dtype",
        default=None,
        choices=["float32", "bfloat16"],
        help="precision of the resumed passes and of the naive loop compared with them (default: "
        "bfloat16 on CUDA; float32 on a CPU, the job's default)",
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--chunk-size", type=int, default=1024)
    p.add_argument("--no-recheck", action="store_true", help="skip the float32 re-check of near ties")
    p.add_argument("--skip-full-run", action="store_true", help="do not time the whole analysis")
    p.add_argument(
        "--skip-fp32-naive", action="store_true", help="leave out the float32 naive loop (the exact answer)"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Time vitscope's schedule and the naive loops on the same batches; print JSON lines."""
    import torch

    from vitscope.vit.analysis.precision import model_in
    from vitscope.vit.models import load_model

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.dtype = args.dtype or ("bfloat16" if device.startswith("cuda") else "float32")
    torch.manual_seed(0)
    lm = load_model(args.model, device=device)
    images, labels = synth_images(lm, args.images)
    batches = preprocess(lm, images, labels, args.batch_size)
    fast = model_in(lm, args.dtype)
    env = environment(device)
    for line in _compare(lm, fast, batches, args, device):
        emit({"model": args.model, **line, **env})
    if not args.skip_full_run:
        emit(
            {
                "bench": "head-importance-run",
                "model": args.model,
                **_full_run(lm, images, labels, args, device),
                **env,
            }
        )
    return 0


def synth_images(lm: Any, n: int) -> tuple[Any, Any]:
    """The first n SynthScenes images at the model's input size: uint8 (N, H, W, 3) and labels (N,)."""
    import numpy as np

    from vitscope.vit.data.inputs import SynthSource

    parts = list(SynthSource(n).batches(256, lm.layout.image_size))
    return np.concatenate([b.images for b in parts]), np.concatenate([b.labels for b in parts])


def preprocess(lm: Any, images: Any, labels: Any, batch_size: int) -> list[tuple[Any, Any]]:
    """(pixels (B, 3, h, w), labels (B,)) batches on the model's device."""
    import torch

    from vitscope.vit.analysis.head_importance import labels_apply
    from vitscope.vit.data.inputs import SynthSource

    use = labels_apply(lm, SynthSource(len(images)))
    out = []
    for start in range(0, len(images), batch_size):
        raw = torch.as_tensor(labels[start : start + batch_size], device=lm.device)
        out.append(
            (lm.preprocess(images[start : start + batch_size]), raw if use else torch.full_like(raw, -1))
        )
    return out


def _compare(
    lm: Any, fast: Any, batches: list[tuple[Any, Any]], args: argparse.Namespace, device: str
) -> list[dict]:
    """Time vitscope and the naive loops (after a warm-up on two images); return the JSON lines."""
    from vitscope.vit.analysis.head_importance import (
        AblationStats,
        CutsOnce,
        ablate_batch,
        clean_pass,
        naive_ablation,
    )

    got: dict[str, Any] = {"rechecked": 0}

    def ours(work: list[tuple[Any, Any]]) -> AblationStats:
        parts, cuts = [], CutsOnce()  # probed once per run, inside the timing, as a job does
        for pixels, labels in work:
            clean = clean_pass(lm, pixels, labels, taylor=False)
            stats, rechecked = ablate_batch(lm, fast, clean, args.chunk_size, not args.no_recheck, cuts)
            parts.append(stats)
            got["rechecked"] += rechecked
        return AblationStats.cat(parts)

    low = [(pixels.to(fast.dtype), labels) for pixels, labels in batches]
    tiny = [(batches[0][0][:2], batches[0][1][:2])]
    ours(tiny), naive_ablation(lm, tiny), naive_ablation(fast, [(p.to(fast.dtype), t) for p, t in tiny])
    got["rechecked"] = 0
    t_ours = timed(lambda: got.__setitem__("ours", ours(batches)), device, warmup=0, repeats=1)
    t_low = timed(lambda: got.__setitem__("low", naive_ablation(fast, low)), device, warmup=0, repeats=1)
    figures = _figures(lm, sum(len(p) for p, _ in batches), args, t_ours, device)
    lines = [
        {
            "bench": "head-importance",
            "naive_dtype": args.dtype,
            "naive_s": t_low,
            "speedup": t_low / t_ours,
            **figures,
            **_differences(got["low"], got["ours"]),
            "rechecked_copies": got["rechecked"],
        }
    ]
    if fast is not lm and not args.skip_fp32_naive:
        t_fp32 = timed(
            lambda: got.__setitem__("fp32", naive_ablation(lm, batches)), device, warmup=0, repeats=1
        )
        lines.append(
            {
                "bench": "head-importance-vs-fp32",
                "naive_dtype": "float32",
                "naive_s": t_fp32,
                "speedup": t_fp32 / t_ours,
                **figures,
                **_differences(got["fp32"], got["ours"]),
            }
        )
    return lines


def _figures(lm: Any, n: int, args: argparse.Namespace, t_ours: float, device: str) -> dict:
    """vitscope's time and the FLOP accounting of its schedule against the bfloat16 peak."""
    layers, heads = lm.num_layers, lm.num_heads
    block = block_flops(lm)
    schedule = n * heads * resumed_flops(lm) + n * layers * block  # plus the one clean pass per image
    peak = peak_bf16_tflops(environment(device)["device_name"])
    achieved = schedule / t_ours / 1e12
    return {
        "images": n,
        "dtype": args.dtype,
        "batch_size": args.batch_size,
        "chunk_size": args.chunk_size,
        "vitscope_s": t_ours,
        "schedule_min_flops": schedule,
        "naive_flops": n * layers * heads * layers * block + n * layers * block,
        "vitscope_tflops": achieved,
        "peak_bf16_tflops": peak,
        "fraction_of_peak": achieved / peak if peak and args.dtype == "bfloat16" else None,
    }


def block_flops(lm: Any) -> float:
    """FLOPs of one transformer block on one image: 2 x weights x tokens + the QK^T and AV products."""
    tokens, width = lm.layout.n_tokens, int(lm.model.config.hidden_size)
    weights = sum(p.numel() for p in lm.parts.blocks[0].parameters() if p.dim() >= 2)
    return float(2 * tokens * weights + 2 * 2 * tokens * tokens * width)


def resumed_flops(lm: Any) -> float:
    """FLOPs of the resumed copies of one image and one head of every layer (sum over the ablated layer l).

    A copy ablated at l runs blocks l..L-1, two of them cut (`vitscope.vit.analysis.head_importance`):
    - block l resumes after its attention (where the model has `output_maps`): the MLP on every token
      plus the rank-d correction context_h (T, d) @ W_O[h] (d, D); no Q/K/V, attention or O;
    - the last block, for l < L-1 and a classifier reading R prefix rows (`readout_rows`): Q, K and V of
      every token (the projections run inside the attention module, which stops at the attention
      function once it has the keys and values, so every token's Q is computed too), then the whole
      block on the R rows (their Q/K/V again, O, MLP) with their R x T attention rows. Copies ablated
      at the last layer run it whole but for the attention skipped above (the layer impact reads it all).
    Projections are D x D (heads x head_dim = D in the supported families); the MLP is the rest of the
    block's weights. Norms, layer scales and residual adds are not counted (not matrix products).
    """
    from vitscope.vit.analysis.head_importance import output_maps, readout_rows

    layers, heads = lm.num_layers, lm.num_heads
    tokens, width = lm.layout.n_tokens, int(lm.model.config.hidden_size)
    block = block_flops(lm)
    weights = sum(p.numel() for p in lm.parts.blocks[0].parameters() if p.dim() >= 2)
    projection = width * width
    mlp = weights - 4 * projection
    ablated = 2 * tokens * mlp + 2 * tokens * (width // heads) * width if output_maps(lm) else block
    rows = readout_rows(lm)
    last = (
        2 * tokens * 3 * projection + 2 * len(rows) * weights + 2 * 2 * len(rows) * tokens * width
        if rows
        else block
    )
    total = 0.0
    for layer in range(layers):
        total += ablated if layer == layers - 1 else ablated + (layers - 2 - layer) * block + last
    return total


def _differences(naive: Any, ours: Any) -> dict:
    """Largest absolute per-head differences; accuracy drop in percentage points."""
    a, b = naive.per_head(), ours.per_head()
    diff = {name: float((a[name] - b[name]).abs().max()) for name in a}
    return {
        "accuracy_drop_max_abs_diff_pp": 100 * diff["accuracy_drop"],
        "prob_drop_max_abs_diff": diff["prob_drop"],
        "loss_change_max_abs_diff": diff["loss_change"],
        "layer_impact_max_abs_diff": diff["layer_impact"],
        "prob_after_max_abs_diff": float((naive.prob_after - ours.prob_after).abs().max()),
    }


def _full_run(lm: Any, images: Any, labels: Any, args: argparse.Namespace, device: str) -> dict:
    """Time the whole analysis (`run`: preprocessing, ablation, Taylor) on in-memory images."""
    import numpy as np

    from vitscope.contracts.kinds.head_importance import HeadImportanceParams
    from vitscope.vit.analysis import head_importance
    from vitscope.vit.data.inputs import SynthSource

    if not head_importance.labels_apply(lm, SynthSource(len(images))):
        labels = np.full_like(labels, -1)
    params = HeadImportanceParams(
        dtype=args.dtype, batch_size=args.batch_size, chunk_size=args.chunk_size, recheck=not args.no_recheck
    )
    cached = _MemorySource(images, labels)
    seconds = timed(lambda: head_importance.run(lm, cached, params), device, warmup=0, repeats=1)
    return {
        "images": len(images),
        "dtype": args.dtype,
        "run_s": seconds,
        "images_per_s": len(images) / seconds,
    }


class _MemorySource:
    """SynthScenes images already rendered, so the timing leaves out the CPU renderer."""

    def __init__(self, images: Any, labels: Any) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def batches(self, batch_size: int, size: Any) -> Any:
        """Yield `Batch`es of the cached images (already at `size`)."""
        import numpy as np

        from vitscope.vit.data.inputs import Batch

        for start in range(0, len(self.images), batch_size):
            idx = np.arange(start, min(start + batch_size, len(self.images)))
            boxes = np.full((len(idx), 4), np.nan, np.float32)
            yield Batch(self.images[idx], self.labels[idx], boxes, idx)
