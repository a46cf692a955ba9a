"""Eigen-CAM's Gram matrices and solver before and after the 2026-12-03 changes, in one process.

Before: every layer's features centred in float32 and multiplied in float32; tries of power 16 and
1024. After: half-precision features multiplied on the tensor cores and centred after the product
(`eigencam._centred_after`); tries of power 16, 128 and 1024. Prints, per input (noise, SynthScenes),
at batch 256 in bfloat16: the forward's rate, all-layer Eigen-CAM's per variant, the Gram and solver
times alone, the error of each variant's Gram and vectors against float64, how far the maps move,
then the kernels of the new solver on noise. For finding costs; the bench is the reported figure.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

import torch

from vitscope.bench.gpu.hotspots import kernels, seconds
from vitscope.vit.models import load_model


def main() -> None:
    from vitscope.vit.analysis import eigencam as ec
    from vitscope.vit.analysis.precision import model_in

    lm = load_model("random:vit-base", device="cuda")
    cam = model_in(lm, "bfloat16")
    every = ec.Settings(layers=tuple(range(lm.num_layers)), gradcam_layer=None, rollout=False)
    new_grams, new_tries = ec.layer_grams, ec.TRIES

    def old_grams(patches: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.stack([ec._centred_first(p) for p in patches], 1)

    variants: dict[str, tuple[Any, Any]] = {
        "before": (old_grams, ((3, 2), (8, 4))),
        "after": (new_grams, new_tries),
    }
    for inputs in ("noise", "synthscenes"):
        x, patches = _features(cam, inputs)
        centred = [p[:8].double() - p[:8].double().mean(-2, keepdim=True) for p in patches]
        truth_gram = torch.stack([m @ m.mT for m in centred], 1)  # float64 throughout
        truth_vec = torch.linalg.eigh(truth_gram)[1][..., -1]
        record: dict[str, object] = {"inputs": inputs}
        maps = {}
        with torch.no_grad():
            record["forward_img_s"] = 256 / seconds(functools.partial(cam.forward, x), 5)
            for name, (grams, tries) in variants.items():
                ec.layer_grams, ec.TRIES = grams, tries
                try:
                    record[f"{name}_img_s"] = 256 / seconds(
                        functools.partial(ec.analyse_batch, cam, x, every), 5
                    )
                    record[f"{name}_gram_s"] = seconds(functools.partial(grams, patches), 5)
                    g = grams(patches)
                    record[f"{name}_solver_s"] = seconds(functools.partial(ec.gram_projections, g), 5)
                    small = g[:8].double()
                    record[f"{name}_gram_rel_err"] = float(
                        ((small - truth_gram).abs().amax((-2, -1)) / truth_gram.abs().amax((-2, -1))).max()
                    )
                    vec = ec.top_eigenvector(g[:8]).double()
                    vec = vec * (vec * truth_vec).sum(-1, keepdim=True).sign()
                    record[f"{name}_vec_err_max"] = float((vec - truth_vec).norm(dim=-1).max())
                    maps[name] = ec.analyse_batch(cam, x, every).eigen.projection.float()
                finally:
                    ec.layer_grams, ec.TRIES = new_grams, new_tries
                rate = record[f"{name}_img_s"]
                record[f"{name}_vs_forward"] = rate / record["forward_img_s"]  # type: ignore[operator]
            p0, p1 = maps["before"], maps["after"]
            record["proj_rel_diff_max"] = float(((p1 - p0).norm(dim=-1) / p0.norm(dim=-1)).max())
        print(json.dumps(record), flush=True)
        if inputs == "noise":
            g = new_grams(patches)
            kernels(functools.partial(ec.gram_projections, g), 20)
            kernels(functools.partial(new_grams, patches), 10)


def _features(cam: Any, inputs: str, batch: int = 256) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The bench's pixels `inputs` (batch, on the GPU in bfloat16) and every layer's patch tokens."""
    from vitscope.bench.eigencam import _inputs
    from vitscope.vit.models import intervene

    x = _inputs(cam, inputs, batch).to("cuda", torch.bfloat16)
    with torch.no_grad(), intervene(cam.parts, record_outputs=range(cam.num_layers)) as rec:
        cam.forward(x)
    return x, [cam.layout.patches(rec.outputs[i], dim=1) for i in range(cam.num_layers)]


def _counted(inner: Any, counts: list[int], gram: torch.Tensor, a: torch.Tensor, steps: int) -> Any:
    counts.append(len(gram))
    return inner(gram, a, steps)


def tries_sweep() -> None:
    """Solver time and matrices per try for candidate `TRIES` and block widths, on noise and SynthScenes
    features (batch 256, bfloat16, every layer)."""
    from vitscope.vit.analysis import eigencam as ec
    from vitscope.vit.analysis.precision import model_in

    lm = load_model("random:vit-base", device="cuda")
    cam = model_in(lm, "bfloat16")
    tries, block, inner = ec.TRIES, ec.BLOCK, ec._block_ritz
    candidates = [
        (((3, 2), (8, 4)), 8),
        (((3, 2), (5, 4), (8, 4)), 8),
        (((3, 2), (6, 4), (8, 4)), 8),
        (((3, 2), (6, 2), (8, 4)), 8),
        (((3, 2), (5, 4), (8, 4)), 16),
        (((3, 2), (4, 4), (8, 4)), 16),
    ]
    for inputs in ("noise", "synthscenes"):
        g = ec.layer_grams(_features(cam, inputs)[1])
        for candidate, width in candidates:
            counts: list[int] = []
            ec.TRIES, ec.BLOCK = candidate, width
            ec._block_ritz = functools.partial(_counted, inner, counts)
            try:
                ec.top_eigenvector(g)
                ec._block_ritz = inner
                t = seconds(functools.partial(ec.gram_projections, g), 5)
            finally:
                ec.TRIES, ec.BLOCK, ec._block_ritz = tries, block, inner
            print(
                json.dumps(
                    {"inputs": inputs, "tries": candidate, "block": width, "solver_s": t, "per_try": counts}
                )
            )


if __name__ == "__main__":
    import sys

    tries_sweep() if "--tries" in sys.argv else main()
