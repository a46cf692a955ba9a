"""Experiment: how much leaner a ViT-B block runs compiled than eager, at the resumed passes' shape.

Head importance's resumed passes run whole blocks on chunks of 1024 image x head copies in bfloat16
at about the eager forward's efficiency; fusing layer norm with the residual add and GELU with its
bias (`torch.compile`) is what could lift them past it. Prints one JSON line: eager and compiled
seconds per block (default mode; then max-autotune without CUDA graphs), their TFLOP/s, the
compile times and the largest difference of the outputs. For deciding, not for reporting.
"""

from __future__ import annotations

import functools
import json
import time

import torch

from vitscope.bench.gpu.hotspots import seconds
from vitscope.vit.models import load_model


def main(copies: int = 1024) -> None:
    from vitscope.vit.analysis.precision import model_in

    lm = model_in(load_model("random:vit-base", device="cuda"), "bfloat16")
    block = lm.parts.blocks[5]
    tokens, width = lm.layout.n_tokens, int(lm.model.config.hidden_size)
    hidden = torch.randn(copies, tokens, width, device="cuda", dtype=torch.bfloat16)
    flops = 2 * copies * tokens * 12 * width**2 + 4 * copies * tokens**2 * width  # GEMMs + attention
    record: dict[str, float | str] = {"copies": copies}

    def first(out: object) -> torch.Tensor:
        return out[0] if isinstance(out, tuple) else out  # type: ignore[return-value]

    with torch.no_grad():
        want = first(block(hidden))
        record["eager_s"] = seconds(functools.partial(block, hidden), 10)
        for mode in ("default", "max-autotune-no-cudagraphs"):
            start = time.perf_counter()
            try:
                fn = torch.compile(block, mode=mode)
                got = first(fn(hidden))
                torch.cuda.synchronize()
            except Exception as error:  # an experiment: report what broke and go on
                record[f"{mode}_error"] = repr(error)[:300]
                continue
            record[f"{mode}_compile_s"] = time.perf_counter() - start
            record[f"{mode}_s"] = seconds(functools.partial(fn, hidden), 10)
            record[f"{mode}_max_abs_diff"] = float((got.float() - want.float()).abs().max())
    for key in [k for k in record if k.endswith("_s") and not k.endswith("compile_s")]:
        record[key.replace("_s", "_tflops")] = flops / float(record[key]) / 1e12
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
