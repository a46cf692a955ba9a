"""What a `vitscope run` on random:vit-base pays before and around its analysis, part by part.

For finding costs; `vitscope bench run-path` is the reported figure. In a fresh process, prints
one JSON line: CUDA's start, building random vit-base on the CPU (its class's own seeded
initialisation), moving it to the GPU, reading off its parts (one blank pass), the randomized copy
Eigen-CAM's sanity check builds, and SynthScenes' rendering of 1,000 224-px images in the caller
and by 2, 4, 8 and 12 helper processes (`vitscope.vit.data.render_pool`), started cold (their
start-up included) and again warm, and the average ranks of one job's maps (1,000 images, 12 layers,
196 patches) by scipy and by `eigencam.average_ranks`.

    python3 vitscope/bench/gpu/startup_parts.py
"""

from __future__ import annotations

import json
import os
import time


def main() -> None:
    clock: dict[str, float | int] = {}
    last = [time.perf_counter()]

    def mark(name: str) -> None:
        now = time.perf_counter()
        clock[f"{name}_s"] = now - last[0]
        last[0] = now

    import torch

    mark("import_torch")
    torch.cuda.init()
    torch.zeros(1, device="cuda")
    torch.cuda.synchronize()
    mark("cuda_start")
    from vitscope.vit.models import configs, load_model
    from vitscope.vit.models.loading import default_labels

    mark("import_model_layer")
    cls, config, _, _ = configs.random_model("vit", "base", default_labels())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(configs.seeded_init("vit", "base"))
        model = cls(config)
    mark("build_on_cpu")
    module: torch.nn.Module = model
    module.to("cuda")
    torch.cuda.synchronize()
    mark("move_to_gpu")
    lm = load_model("random:vit-base", "cuda")  # the same again, whole, with the probe pass
    torch.cuda.synchronize()
    mark("load_model")
    from vitscope.vit.analysis.eigencam import randomized_copy
    from vitscope.vit.analysis.precision import model_in

    randomized_copy(model_in(lm, "bfloat16"), 0)
    torch.cuda.synchronize()
    mark("randomized_copy_bf16")
    from vitscope.vit.data import render_pool
    from vitscope.vit.data.synthscenes import SynthScenes

    for workers in (1, 2, 4, 8, 12):
        render_pool._close_shared()  # a fresh pool of this size: the first round pays its start-up
        for when in ("cold", "warm"):
            start = time.perf_counter()
            for _ in SynthScenes(1000, image_size=224).batches(256, workers=workers):
                pass
            clock[f"render_1000_workers{workers}_{when}_s"] = time.perf_counter() - start
    import numpy as np
    from scipy.stats import rankdata

    from vitscope.vit.analysis.eigencam import average_ranks

    maps = np.random.default_rng(0).random((1000, 12, 196), dtype=np.float32)  # one job's projections
    for name, rank in (("scipy", lambda: rankdata(maps, axis=-1)), ("torch", lambda: average_ranks(maps))):
        rank()
        start = time.perf_counter()
        rank()
        clock[f"ranks_1000x12x196_{name}_s"] = time.perf_counter() - start
    clock["cores"] = os.cpu_count() or 0
    clock["torch_threads"] = torch.get_num_threads()
    print(json.dumps({"bench": "startup-parts", **clock}), flush=True)


if __name__ == "__main__":
    main()
