"""Where the GPU time of head importance and Eigen-CAM goes (GPU runs: `bash vitscope/bench/gpu/run.sh
profile`).

Prints, per analysis, the CUDA kernels that take the most time in one warmed batch, and times
vitscope's ablation schedule over a few (batch, chunk) shapes on the same 256 images. Every
figure here is for finding the cost, not for reporting: the benches are the reported figures.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch.profiler import ProfilerActivity, profile

from vitscope.vit.models import load_model  # first: the analyses import the models package

if TYPE_CHECKING:
    from vitscope.vit.models import LoadedModel


def seconds(fn: Callable[[], object], repeats: int = 3) -> float:
    """Median wall seconds of `fn` (device synchronized), after one warm-up call."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def kernels(fn: Callable[[], object], rows: int = 18) -> None:
    """Print the costliest CUDA kernels of one call of `fn` (warmed first)."""
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
        fn()
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=rows, max_name_column_width=70))


def main() -> None:
    """Head importance, Eigen-CAM and the data path, one after the other."""
    lm = load_model("random:vit-base", device="cuda")
    if "--eigencam-variants" in sys.argv:
        eigencam_variants(lm)
        return
    head_importance(lm)
    eigencam(lm)
    data_path()


def head_importance(lm: LoadedModel) -> None:
    """Ablation time by (batch, chunk), with and without the re-check; the kernels of one batch."""
    from vitscope.bench.head_importance import preprocess, synth_images
    from vitscope.vit.analysis.head_importance import ablate_batch, clean_pass, naive_ablation
    from vitscope.vit.analysis.precision import model_in

    fast = model_in(lm, "bfloat16")
    images, labels = synth_images(lm, 256)
    for batch, chunk in ((64, 1024), (256, 3072)):
        work = preprocess(lm, images, labels, batch)
        cleans = [clean_pass(lm, pixels, target, taylor=False) for pixels, target in work]

        def clean_all(work: list = work) -> None:
            for pixels, target in work:
                clean_pass(lm, pixels, target, taylor=False)

        def ablate_all(cleans: list = cleans, chunk: int = chunk, recheck: bool = True) -> int:
            return sum(ablate_batch(lm, fast, c, chunk, recheck)[1] for c in cleans)

        record = {
            "batch": batch,
            "chunk": chunk,
            "clean_s": seconds(clean_all),
            "ablate_s": seconds(ablate_all, 2),
            "ablate_no_recheck_s": seconds(functools.partial(ablate_all, recheck=False), 2),
            "rechecked": ablate_all(),
        }
        print(json.dumps(record), flush=True)
    work = preprocess(lm, images, labels, 64)
    low = [(p.to(fast.dtype), t) for p, t in work[:1]]
    print(json.dumps({"naive_bf16_64_images_s": seconds(lambda: naive_ablation(fast, low), 1)}), flush=True)
    clean = clean_pass(lm, *work[0], taylor=False)
    kernels(lambda: ablate_batch(lm, fast, clean, 1024, recheck=False))


def eigencam(lm: LoadedModel) -> None:
    """Eigen-CAM at batch 256 in bfloat16: rates, the solver alone, the kernels of one batch."""
    from vitscope.vit.analysis.eigencam import Settings, analyse_batch, centred_gram, gram_projections
    from vitscope.vit.analysis.precision import model_in

    cam = model_in(lm, "bfloat16")
    x = torch.randn(256, 3, 224, 224, device="cuda", dtype=torch.bfloat16)
    every = Settings(layers=tuple(range(lm.num_layers)), gradcam_layer=None)
    one = Settings(layers=(11,), gradcam_layer=None)
    plain = Settings(layers=tuple(range(lm.num_layers)), gradcam_layer=None, sign_rule="skew")
    tokens = torch.randn(256, 12, 196, 768, device="cuda", dtype=torch.bfloat16)
    gram = centred_gram(tokens)
    with torch.no_grad():
        rates = {
            "forward": 256 / seconds(lambda: cam.forward(x), 5),
            "all_layers": 256 / seconds(lambda: analyse_batch(cam, x, every), 5),
            "one_layer": 256 / seconds(lambda: analyse_batch(cam, x, one), 5),
            "all_layers_skew_sign": 256 / seconds(lambda: analyse_batch(cam, x, plain), 5),
            "gram_12_layers_s": seconds(lambda: centred_gram(tokens), 5),
            "solver_12_layers_s": seconds(lambda: gram_projections(gram), 5),
        }
    print(json.dumps(rates), flush=True)
    kernels(lambda: analyse_batch(cam, x, every), 25)


def eigencam_variants(lm: LoadedModel, batch: int = 256) -> None:
    """An experiment, not adopted: the solver's Gram squarings in TF32. Prints the all-layer rate
    against the forward with and without it, and how far the maps move (batch 256, bfloat16)."""
    from vitscope.vit.analysis import eigencam as ec
    from vitscope.vit.analysis.precision import model_in, tf32

    exact = ec.top_eigenvector

    def squarings_in_tf32(gram: torch.Tensor) -> torch.Tensor:
        with tf32():
            a = ec._powers(gram / gram.abs().amax((-2, -1)).clamp_min(1e-30)[..., None, None], ec.SQUARINGS)
        return ec._block_ritz(gram, a, ec.BLOCK_STEPS)[0]

    cam = model_in(lm, "bfloat16")
    x = torch.randn(batch, 3, *lm.layout.image_size, device=lm.device, dtype=torch.bfloat16)
    every = ec.Settings(layers=tuple(range(lm.num_layers)), gradcam_layer=None, rollout=False)
    with torch.no_grad():
        forward = seconds(lambda: cam.forward(x), 5)
        record: dict[str, float] = {"forward_img_s": batch / forward}
        maps = {}
        for name, solver in (("exact", exact), ("tf32_squarings", squarings_in_tf32)):
            ec.top_eigenvector = solver
            try:
                t = seconds(lambda: ec.analyse_batch(cam, x, every), 5)
                maps[name] = ec.analyse_batch(cam, x, every).eigen
            finally:
                ec.top_eigenvector = exact
            record[f"{name}_img_s"] = batch / t
            record[f"{name}_vs_forward"] = forward / t
    p0, p1 = maps["exact"].projection.float(), maps["tf32_squarings"].projection.float()
    record["projection_max_rel_diff"] = float(((p1 - p0).norm(dim=-1) / p0.norm(dim=-1)).max())
    record["cam_max_abs_diff"] = float((maps["tf32_squarings"].cam - maps["exact"].cam).abs().max())
    print(json.dumps(record), flush=True)


def data_path() -> None:
    """SynthScenes at 224 px: 1000 images rendered in the caller and by the pool."""
    from vitscope.vit.data.synthscenes import SynthScenes, render_workers

    times = {}
    for workers in (1, render_workers(1000)):
        start = time.perf_counter()
        for _ in SynthScenes(1000, image_size=224).batches(64, workers=workers):
            pass
        times[f"render_1000_workers_{workers}_s"] = time.perf_counter() - start
    print(json.dumps(times), flush=True)


if __name__ == "__main__":
    main()
