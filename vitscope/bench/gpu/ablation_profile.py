"""Where head importance's time goes beyond its blocks (H200, random:vit-base, one batch of 64 images).

A ViT-B block on 1024 bfloat16 copies runs at about 440 TFLOP/s eager (`block_compile.py`), 56% of
the peak, while the whole schedule reaches 32%. Prints, per ablated layer, the time of one
`ablate_pairs` call on the layer's 768 copies against the time of the blocks it runs, measured
alone on the same copies; the clean pass, the re-check and `ablate_batch` with and without it; then
the kernels of the layer-0 call. For finding costs; the bench is the reported figure.
"""

from __future__ import annotations

import functools
import json

import torch

from vitscope.bench.gpu.hotspots import kernels, seconds
from vitscope.vit.models import load_model


def main() -> None:
    from vitscope.bench.head_importance import preprocess, synth_images
    from vitscope.vit.analysis import head_importance as hi
    from vitscope.vit.analysis.precision import model_in

    lm = load_model("random:vit-base", device="cuda")
    fast = model_in(lm, "bfloat16")
    images, labels = synth_images(lm, 64)
    [(pixels, target)] = preprocess(lm, images, labels, 64)
    clean = hi.clean_pass(lm, pixels, target, taylor=False)
    once = hi.CutsOnce()
    cuts = once.of(fast)
    samples, heads = hi._all_pairs(64, lm.num_heads, pixels.device)
    record: dict[str, object] = {"copies_per_layer": int(samples.numel())}
    with torch.no_grad():
        hidden = clean.residuals[5][samples].to(torch.bfloat16)
        block = fast.parts.blocks[5]
        block_s = seconds(functools.partial(block, hidden), 10)
        record["block_s"] = block_s
        for layer in (0, 5, 10, 11):
            cache = hi.layer_cache(clean, layer, fast.dtype)
            call = functools.partial(hi.ablate_pairs, fast, layer, clean, samples, heads, cache, cuts)
            record[f"layer{layer}_s"] = seconds(call, 5)
            record[f"layer{layer}_blocks_s"] = (lm.num_layers - layer) * block_s
        record["clean_pass_s"] = seconds(functools.partial(hi.clean_pass, lm, pixels, target, False), 5)
        record["ablate_batch_s"] = seconds(
            functools.partial(hi.ablate_batch, lm, fast, clean, 1024, True, once), 3
        )
        record["ablate_batch_no_recheck_s"] = seconds(
            functools.partial(hi.ablate_batch, lm, fast, clean, 1024, False, once), 3
        )
        record["rechecked"] = hi.ablate_batch(lm, fast, clean, 1024, True, once)[1]
    print(json.dumps(record), flush=True)
    cache = hi.layer_cache(clean, 0, fast.dtype)
    kernels(functools.partial(hi.ablate_pairs, fast, 0, clean, samples, heads, cache, cuts), 30)
    kernels(functools.partial(hi.ablate_batch, lm, fast, clean, 1024, True, once), 30)


if __name__ == "__main__":
    main()
