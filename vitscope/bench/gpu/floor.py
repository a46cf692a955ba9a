"""Where head importance's floor lies on a GPU: the run's analysis by phase, and what fp8 would give.

For finding costs and limits; the bench is the reported figure. Prints JSON lines:
- `floor-phases`: `head_importance.run`'s work on N SynthScenes images (random:vit-base by
  default) at the job's defaults (Taylor on, bfloat16 resumed passes, exact re-check), per batch
  size: preprocessing, the float32 clean pass with its Taylor backward passes, the bf16 resumed
  passes and the re-check timed apart and summed over the batches, with the schedule's minimum
  FLOP count and the seconds it would take at the bf16 peak;
- `floor-fp8-numerics`: the resumed passes' decision margins on one batch against the re-check's
  bound (`RECHECK_FACTOR` x the batch's largest clean logit error) for a bf16 copy and for an fp8
  copy (every block's linear layers through `torch._scaled_mm`, rows and output channels scaled
  apart, e4m3): how many copies each would send to the re-check;
- `floor-matmul`: the device's plain matrix-product rate in the model's dtypes, at 4096^3 and at
  the block's widest product with a batch's rows (64 images x T tokens): the ceiling any schedule's
  per-FLOP rate stays under (on a CPU, where the naive loop already runs near it);
- `floor-fp8-gemm`: the rate of the block's four products (QKV, O, FC1, FC2) at the resumed
  passes' shape (1024 copies x T tokens) in bf16 and in fp8 (with and without the activation's
  quantization), the ceiling fp8 could lift the products to.

    python3 vitscope/bench/gpu/floor.py [--model M] [--images N] [--device D] [--parts matmul,fp8,phases]
"""

from __future__ import annotations

import argparse
import json
import types
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from vitscope.bench.common import environment
from vitscope.bench.common import once_timed as timed
from vitscope.vit.models import LoadedModel, load_model

E4M3 = torch.float8_e4m3fn


def phases(lm: LoadedModel, fast: LoadedModel, images: Any, labels: Any, batch_size: int) -> dict[str, float]:
    """Seconds of each phase of the analysis over all images in batches of `batch_size`."""
    from vitscope.bench.head_importance import preprocess
    from vitscope.vit.analysis import head_importance as hi

    device, once = lm.device, hi.CutsOnce()
    once.of(fast), once.of(lm)  # probed before the timing (a run probes once, in its first batch)
    out = dict.fromkeys(("preprocess_s", "clean_taylor_s", "resumed_s", "recheck_s"), 0.0)
    out["rechecked"] = 0.0
    for start in range(0, len(images), batch_size):
        part = slice(start, start + batch_size)
        [(pixels, target)], seconds = timed(
            partial(preprocess, lm, images[part], labels[part], batch_size), device
        )
        out["preprocess_s"] += seconds
        clean, seconds = timed(partial(hi.clean_pass, lm, pixels, target, True), device)
        out["clean_taylor_s"] += seconds
        _, resumed = timed(partial(hi.ablate_batch, lm, fast, clean, 1024, False, once), device)
        out["resumed_s"] += resumed
        (_, rechecked), seconds = timed(partial(hi.ablate_batch, lm, fast, clean, 1024, True, once), device)
        out["recheck_s"] += seconds - resumed
        out["rechecked"] += rechecked
    return out


def phases_line(
    lm: LoadedModel, fast: LoadedModel, images: Any, labels: Any, batch_size: int, device_name: str
) -> dict:
    """The `floor-phases` line (per batch, the re-check is the schedule with it less the one without it)."""
    from vitscope.bench.head_importance import block_flops, peak_bf16_tflops, resumed_flops

    got = phases(lm, fast, images, labels, batch_size)
    n = len(images)
    flops = n * lm.num_heads * resumed_flops(lm) + n * lm.num_layers * block_flops(lm)
    peak = peak_bf16_tflops(device_name)
    return {
        "bench": "floor-phases",
        "images": n,
        "batch_size": batch_size,
        **got,
        "analysis_s": got["preprocess_s"] + got["clean_taylor_s"] + got["resumed_s"] + got["recheck_s"],
        "schedule_min_flops": flops,
        "seconds_at_peak": flops / (peak * 1e12) if peak else None,
    }


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x (M, K) as e4m3 with one float32 scale per row (M, 1): x ~= q * scale."""
    scale = x.abs().amax(-1, keepdim=True).float().clamp_min(1e-12) / torch.finfo(E4M3).max
    return (x.float() / scale).to(E4M3), scale


def fp8_linear(x: torch.Tensor, q_weight: torch.Tensor, w_scale: torch.Tensor, bias: Any) -> torch.Tensor:
    """x (..., K) @ weight.T + bias through `torch._scaled_mm` (e4m3 both sides, rowwise scales), bf16 out;
    q_weight (N, K) e4m3 and w_scale (N, 1) from `quantize_rows` of the weight."""
    flat = x.reshape(-1, x.shape[-1])
    q, scale = quantize_rows(flat)
    if q.device.type == "cuda":
        y = torch._scaled_mm(q, q_weight.t(), scale, w_scale.t(), out_dtype=torch.bfloat16)
    else:  # the same numbers, for trying the script on a CPU
        y = ((q.float() * scale) @ (q_weight.float() * w_scale).t()).to(torch.bfloat16)
    if bias is not None:
        y = y + bias.to(y.dtype)
    return y.reshape(*x.shape[:-1], y.shape[-1])


def fp8_copy(fast: LoadedModel) -> LoadedModel:
    """A copy of the bf16 model whose blocks' linear layers run in fp8 (`fp8_linear`)."""
    import copy

    eight = copy.deepcopy(fast)
    for block in eight.parts.blocks:
        for module in block.modules():
            if isinstance(module, torch.nn.Linear):
                q, s = quantize_rows(module.weight.detach())
                module.forward = types.MethodType(  # type: ignore[method-assign]
                    lambda self, x, q=q, s=s: fp8_linear(x, q, s, self.bias), module
                )
    return eight


def fp8_numerics(lm: LoadedModel, fast: LoadedModel, pixels: torch.Tensor, target: torch.Tensor) -> dict:
    """The `floor-fp8-numerics` line for one batch."""
    from vitscope.vit.analysis import head_importance as hi

    clean = hi.clean_pass(lm, pixels, target, False)
    eight = fp8_copy(fast)
    once = hi.CutsOnce()
    margins = {}
    # every copy gated at its ablated layer (no output maps: fp8 products would fail their probe), the
    # last block on the readout rows, in each precision and in float32
    for name, model, rows_of in (("bf16", fast, fast), ("fp8", eight, fast), ("fp32", lm, lm)):
        grid = hi._Grid((clean.size, lm.num_layers, lm.num_heads), lm.device)
        hi.ablate_every_copy(model, clean, grid, 1024, hi.Cuts(once.of(rows_of).rows, None))
        margins[name] = grid.values["margin"]
    m32 = margins["fp32"]
    line: dict[str, Any] = {"bench": "floor-fp8-numerics", "images": clean.size, "copies": m32.numel()}
    for name, model in (("bf16", fast), ("fp8", eight)):
        bound = float(hi.RECHECK_FACTOR * hi._clean_error(model, clean))
        m = margins[name]
        line[f"{name}_clean_error"] = bound / hi.RECHECK_FACTOR
        line[f"{name}_near_ties"] = int((m.abs() <= bound).sum())
        line[f"{name}_max_margin_error"] = float((m - m32).abs().max())
        line[f"{name}_flips"] = int(((m > 0) != (m32 > 0)).sum())
        line[f"{name}_flips_outside_bound"] = int((((m > 0) != (m32 > 0)) & (m.abs() > bound)).sum())
    return line


def matmul_line(lm: LoadedModel) -> dict:
    """The `floor-matmul` line: GFLOP/s of plain products, float32 and bfloat16, two shapes each."""
    device = lm.device
    width = int(lm.model.config.hidden_size)
    hidden = max(m.out_features for m in lm.parts.blocks[0].modules() if isinstance(m, torch.nn.Linear))
    line: dict[str, Any] = {"bench": "floor-matmul", "threads": torch.get_num_threads()}
    shapes = {"square4096": (4096, 4096, 4096), "block_fc1": (64 * lm.layout.n_tokens, width, hidden)}
    for dtype in (torch.float32, torch.bfloat16):
        for name, (m, k, n) in shapes.items():
            a = torch.randn(m, k, device=device, dtype=dtype)
            b = torch.randn(k, n, device=device, dtype=dtype)
            product = partial(torch.matmul, a, b)
            _repeat(product, 2)
            repeats = 5 if device.type == "cpu" else 20
            _, seconds = timed(partial(_repeat, product, repeats), device)
            line[f"{name}_{str(dtype)[6:]}_gflops"] = 2 * m * k * n * repeats / seconds / 1e9
    return line


def _repeat(fn: Callable[[], Any], times: int) -> None:
    for _ in range(times):
        fn()


def fp8_gemm(lm: LoadedModel, copies: int = 1024) -> dict:
    """The `floor-fp8-gemm` line: the block's products at (copies x T) rows, bf16 against fp8."""
    device = lm.device
    rows = copies * lm.layout.n_tokens
    width = int(lm.model.config.hidden_size)
    linears = [m for m in lm.parts.blocks[0].modules() if isinstance(m, torch.nn.Linear)]
    counts = Counter((m.in_features, m.out_features) for m in linears)
    line: dict[str, Any] = {"bench": "floor-fp8-gemm", "rows": rows, "width": width}
    totals = dict.fromkeys(("bf16_s", "fp8_s", "fp8_quantized_s"), 0.0)
    for (k, n), count in sorted(counts.items()):
        x = torch.randn(rows, k, device=device, dtype=torch.bfloat16)
        w = torch.randn(n, k, device=device, dtype=torch.bfloat16) / k**0.5
        qw, sw = quantize_rows(w)
        qx, sx = quantize_rows(x)
        sides: dict[str, Callable[[], torch.Tensor]] = {
            "bf16_s": partial(torch.matmul, x, w.t()),
            "fp8_s": partial(torch._scaled_mm, qx, qw.t(), sx, sw.t(), out_dtype=torch.bfloat16),
            "fp8_quantized_s": partial(fp8_linear, x, qw, sw, None),
        }
        for name, fn in sides.items():
            _repeat(fn, 3)
            _, seconds = timed(partial(_repeat, fn, 10), device)
            per = seconds / 10
            line[f"{k}x{n}_{name[:-2]}_tflops"] = 2 * rows * k * n / per / 1e12
            totals[name] += count * per
    line.update(totals)
    line["fp8_over_bf16_products"] = totals["fp8_s"] / totals["bf16_s"]
    line["fp8_quantized_over_bf16_products"] = totals["fp8_quantized_s"] / totals["bf16_s"]
    return line


def main() -> None:
    from vitscope.bench.head_importance import preprocess, synth_images
    from vitscope.vit.analysis.precision import model_in

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="random:vit-base")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-sizes", default="64,256")
    parser.add_argument("--parts", default="matmul,fp8,phases")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    torch.manual_seed(0)
    lm = load_model(args.model, device=args.device)
    env = environment(str(lm.device))
    if "matmul" in parts:
        print(json.dumps({**matmul_line(lm), **env}), flush=True)
    if not parts & {"fp8", "phases"}:
        return
    fast = model_in(lm, "bfloat16")
    images, labels = synth_images(lm, args.images)
    [(pixels, target)] = preprocess(lm, images[:64], labels[:64], 64)
    if "fp8" in parts:
        if lm.device.type == "cuda":
            print(json.dumps({**fp8_gemm(lm), **env}), flush=True)
        print(json.dumps({**fp8_numerics(lm, fast, pixels, target), **env}), flush=True)
    if "phases" not in parts:
        return
    phases(lm, fast, images[:2], labels[:2], 2)  # warm-up
    for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
        print(
            json.dumps({**phases_line(lm, fast, images, labels, batch_size, env["device_name"]), **env}),
            flush=True,
        )


if __name__ == "__main__":
    main()
