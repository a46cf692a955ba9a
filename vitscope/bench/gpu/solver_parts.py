"""Experiment: where Eigen-CAM's Gram and solver time goes on the H200, and what changed it.

At batch 256 in bfloat16 on random:vit-base, for noise pixels (flat spectra: every matrix takes the
second try) and SynthScenes images (settled by the first), prints one JSON line per input with:
- the parts of the current path, each timed alone: the Gram matrices, the first try's squarings,
  one squaring, one block product `a @ q`, one `_orthonormalise`, the 8 x 8 float64 `eigh` of a
  block, a whole `_block_ritz`, the solver;
- variants, each as all-layer Eigen-CAM against the plain forward, its Gram and solver times, its
  Gram's and vectors' distance from float64 (8 images, every layer) and how far its maps move from
  `before`'s:
  `before`: the path as of 2026-12-03 (a float32 copy of every layer's features multiplied in TF32;
  the trace divided after every squaring);
  `direct_gram`: each layer's X X^T straight from the bfloat16 features into float32 (`out_dtype`;
  exact products and float32 sums without that copy);
  `rescale`: the trace divided every `RESCALE_EVERY` squarings;
  `after`: both (the library's path now);
  `split_squarings`: `after` with each squaring as three TF32 products of a = hi + lo (hi: a rounded
  to 10 mantissa bits, exact in TF32), hi hi + hi lo + lo hi (tried: slower than float32);
then the kernels of the current solver on noise. For deciding, not for reporting.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import Any

import torch

from vitscope.bench.gpu.hotspots import kernels, seconds
from vitscope.bench.gpu.solver_variants import _features
from vitscope.vit.models import load_model


def copied_grams(patches: Sequence[torch.Tensor]) -> torch.Tensor:
    """`layer_grams` before: a float32 copy of every layer's features, multiplied in TF32."""
    from vitscope.vit.analysis import eigencam as ec
    from vitscope.vit.analysis.precision import tf32

    first = patches[0]
    x = first.new_empty((first.shape[0], len(patches), *first.shape[1:]), dtype=torch.float32)
    for i, p in enumerate(patches):
        x[:, i].copy_(p)
    with tf32():
        gram = x @ x.mT
    return ec._centre(gram, lambda bad: ec._centred_first(x[bad]))


def every_step_powers(a: torch.Tensor, squarings: int) -> torch.Tensor:
    """`_powers` before: the trace divided after every squaring."""
    from vitscope.vit.analysis.eigencam import _trace

    tiny = torch.finfo(a.dtype).tiny
    for _ in range(squarings):
        a = a @ a
        a.div_(_trace(a).clamp_min(tiny)[..., None, None])
    return a


def split_powers(a: torch.Tensor, squarings: int) -> torch.Tensor:
    """`_powers` with every product as hi hi + hi lo + lo hi in TF32 (hi: a rounded to TF32)."""
    from vitscope.vit.analysis.eigencam import RESCALE_EVERY, _trace
    from vitscope.vit.analysis.precision import tf32

    tiny = torch.finfo(a.dtype).tiny
    for i in range(squarings):
        hi = ((a.view(torch.int32) + 4096) & -8192).view(torch.float32)  # a rounded to 10 mantissa bits
        lo = a - hi
        with tf32():  # three products: a is symmetric only to rounding, and so hi lo's transpose is not lo hi
            a = hi @ lo
            a.baddbmm_(lo, hi).baddbmm_(hi, hi)
        if (i + 1) % RESCALE_EVERY == 0 or i == squarings - 1:
            a.div_(_trace(a).clamp_min(tiny)[..., None, None])
    return a


def main() -> None:
    from vitscope.vit.analysis import eigencam as ec
    from vitscope.vit.analysis.precision import model_in

    lm = load_model("random:vit-base", device="cuda")
    cam = model_in(lm, "bfloat16")
    every = ec.Settings(layers=tuple(range(lm.num_layers)), gradcam_layer=None, rollout=False)
    current = (ec.layer_grams, ec._powers)
    variants: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
        "before": (copied_grams, every_step_powers),
        "direct_gram": (ec.layer_grams, every_step_powers),
        "rescale": (copied_grams, ec._powers),
        "after": current,
        "split_squarings": (ec.layer_grams, split_powers),
    }
    for inputs in ("noise", "synthscenes"):
        x, patches = _features(cam, inputs)
        centred = [p[:8].double() - p[:8].double().mean(-2, keepdim=True) for p in patches]
        truth_gram = torch.stack([m @ m.mT for m in centred], 1)
        truth_vec = torch.linalg.eigh(truth_gram)[1][..., -1]
        record: dict[str, object] = {"bench": "eigencam-solver-parts", "inputs": inputs}
        with torch.no_grad():
            forward = seconds(functools.partial(cam.forward, x), 5)
            record["forward_img_s"] = 256 / forward
            g = ec.layer_grams(patches).view(-1, 196, 196)
            scale = g.abs().amax((-2, -1))[:, None, None]
            a = ec._powers(g / scale, 3)
            q = torch.randn(196, 8, device="cuda").expand(len(g), 196, 8).contiguous()
            parts: dict[str, Callable[[], object]] = {
                "gram": functools.partial(ec.layer_grams, patches),
                "squarings_3": functools.partial(ec._powers, g / scale, 3),
                "one_squaring": functools.partial(ec._powers, a, 1),
                "block_product": functools.partial(torch.matmul, a, q),
                "orthonormalise": functools.partial(ec._orthonormalise, a @ q),
                "eigh_8x8_f64": functools.partial(torch.linalg.eigh, (q.mT @ q).double()),
                "block_ritz_2": functools.partial(ec._block_ritz, g, a, 2),
                "solver": functools.partial(ec.gram_projections, g),
            }
            for name, fn in parts.items():
                record[f"{name}_ms"] = 1e3 * seconds(fn, 5)
            maps = {}
            for name, (grams, powers) in variants.items():
                ec.layer_grams, ec._powers = grams, powers
                try:
                    t = seconds(functools.partial(ec.analyse_batch, cam, x, every), 5)
                    record[f"{name}_vs_forward"] = forward / t
                    record[f"{name}_gram_ms"] = 1e3 * seconds(functools.partial(grams, patches), 5)
                    gv = grams(patches)
                    small = gv[:8].double()
                    record[f"{name}_gram_rel_err"] = float(
                        ((small - truth_gram).abs().amax((-2, -1)) / truth_gram.abs().amax((-2, -1))).max()
                    )
                    record[f"{name}_solver_ms"] = 1e3 * seconds(functools.partial(ec.gram_projections, gv), 5)
                    vec = ec.top_eigenvector(gv[:8]).double()
                    vec = vec * (vec * truth_vec).sum(-1, keepdim=True).sign()
                    record[f"{name}_vec_err_max"] = float((vec - truth_vec).norm(dim=-1).max())
                    maps[name] = ec.analyse_batch(cam, x, every).eigen.projection.float()
                finally:
                    ec.layer_grams, ec._powers = current
            p0 = maps["before"]
            for name, p1 in maps.items():
                record[f"{name}_proj_rel_diff_max"] = float(((p1 - p0).norm(dim=-1) / p0.norm(dim=-1)).max())
        print(json.dumps(record), flush=True)
        if inputs == "noise":
            kernels(functools.partial(ec.gram_projections, g), 24)


if __name__ == "__main__":
    main()
