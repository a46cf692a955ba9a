"""`vitscope bench eigencam`: batched Eigen-CAM (all layers, one forward) vs pytorch-grad-cam's EigenCAM.

Three figures from the same run, same model, inputs and device: a plain forward pass (the fused
SDPA path, in the same dtype), vitscope's Eigen-CAM of every layer (one forward recording all
block outputs and the last block's attention for the sign, then one batched solve; without the
rollout and Grad-CAM baselines, which earlier runs of this bench timed too), and the reference on one layer, built after the other
two are timed and unhooked after its own timing (it hooks the model when built): pytorch-grad-cam's `EigenCAM` when the `grad-cam` package is
installed, else its exact algorithm re-expressed (forward with a hook, activations to the CPU,
their ViT reshape, per-image numpy SVD of the centred (h*w, C) matrix, `projection = M @ VT[0]`,
ReLU and min-max; the final cv2 resize is left out, which only flatters the reference).

Agreement is measured on the raw projections, before any sign rule, ReLU or scaling: the
reference's sign is arbitrary and its ReLU discards the negative half, so the figure is
|Pearson r| per image between vitscope's projection and the reference's `M @ VT[0]`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

from vitscope.bench.common import emit, environment, timed

TARGET_SPEEDUP = 250.0
TARGET_VS_FORWARD = 0.5
TARGET_CORR = 0.999


def register(sub: Any) -> None:
    """Add the `eigencam` benchmark."""
    p = sub.add_parser("eigencam", help="batched Eigen-CAM (all layers) vs pytorch-grad-cam's EigenCAM")
    p.add_argument("--model", default="random:vit-base")
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--layer", type=int, default=-1, help="layer the reference maps (and agreement uses)")
    p.add_argument("--reference-images", type=int, default=64, help="images the slow reference runs on")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--inputs",
        default="noise",
        choices=["noise", "synthscenes"],
        help="Gaussian-noise pixels (whose features have flat spectra: the solver's slow case) or "
        "SynthScenes images (shapes on textured backgrounds: image-like spectra)",
    )
    p.set_defaults(handler=run)


def reference_projection(acts: np.ndarray) -> np.ndarray:
    """pytorch-grad-cam's `get_2d_projection`: per image, M @ VT[0] of the centred (h*w, C) matrix.

    `acts` (B, C, h, w) as their ViT reshape transform leaves them; returns (B, h, w).
    """
    out = []
    for a in np.nan_to_num(acts):
        m = a.reshape(a.shape[0], -1).T
        m = m - m.mean(axis=0)
        _u, _s, vt = np.linalg.svd(m, full_matrices=True)
        out.append((m @ vt[0, :]).reshape(a.shape[1:]))
    return np.asarray(out, dtype=np.float32)


def _relu_minmax(proj: np.ndarray) -> np.ndarray:
    """BaseCAM's post-processing per image: ReLU, subtract the min, divide by max + 1e-7."""
    cam = np.maximum(proj, 0)
    cam = cam - cam.min(axis=(1, 2), keepdims=True)
    return cam / (1e-7 + cam.max(axis=(1, 2), keepdims=True))


def _reshape_transform(lm: Any) -> Callable[[Any], Any]:
    """Their ViT reshape (drop prefix tokens, (B, h, w, C), channels first), with the layout's counts.

    The activations are handed over in float32: their EigenCAM converts them to numpy, which
    has no bfloat16, and its SVD runs in float anyway.
    """

    def reshape(out: Any) -> Any:
        tokens = out[0] if isinstance(out, tuple) else out
        return lm.layout.to_grid(lm.layout.patches(tokens, 1), dim=1).permute(0, 3, 1, 2).float()

    return reshape


Reference = tuple[str, Callable[[Any], Any], Callable[[], None]]
"""A reference's name, the call mapping a batch, and what removes its hooks from the model."""


def _package_reference(lm: Any, layer: int) -> Reference | None:
    """pytorch-grad-cam's EigenCAM on the block output of `layer`, or None when not installed."""
    try:
        from pytorch_grad_cam import EigenCAM
    except ImportError:
        return None
    import torch

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = lm.model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return lm.forward(x).float()  # their code calls .numpy() on the logits: no bfloat16 there

    cam = EigenCAM(
        model=Logits(), target_layers=[lm.parts.blocks[layer]], reshape_transform=_reshape_transform(lm)
    )
    name = f"pytorch-grad-cam {_package_version()} EigenCAM"
    return name, lambda x: cam(input_tensor=x, targets=None), cam.activations_and_grads.release


def _package_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("grad-cam")
    except metadata.PackageNotFoundError:
        return "(version unknown)"


def _their_projection() -> Callable[[np.ndarray], np.ndarray]:
    """pytorch-grad-cam's own `get_2d_projection` when installed, else its re-expression here."""
    try:
        from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection
    except ImportError:
        return reference_projection
    return get_2d_projection


def _reexpressed_reference(lm: Any, layer: int) -> Reference:
    """Their algorithm, step by step, with vitscope's capture as the forward hook."""
    import torch

    from vitscope.vit.models import intervene

    reshape = _reshape_transform(lm)

    def cam(x: torch.Tensor) -> np.ndarray:
        with torch.no_grad(), intervene(lm.parts, record_outputs=[layer]) as rec:
            lm.forward(x)
        acts = reshape(rec.outputs[layer]).float().cpu().numpy()
        return _relu_minmax(reference_projection(acts))

    name = "re-expressed pytorch-grad-cam EigenCAM (per-image numpy SVD; grad-cam not installed)"
    return name, cam, lambda: None


def _agreement(lm: Any, batches: list[Any], layer: int) -> np.ndarray:
    """|Pearson r| (N,) between vitscope's raw projection and the reference `M @ VT[0]` on `layer`."""
    import torch

    from vitscope.vit.analysis.eigencam import eigencam_maps
    from vitscope.vit.models import intervene

    project = _their_projection()
    corrs = []
    for x in batches:
        with torch.no_grad(), intervene(lm.parts, record_outputs=[layer]) as rec:
            lm.forward(x)
        tokens = rec.outputs[layer]
        ours = eigencam_maps([tokens], lm.layout).projection[:, 0, 0].cpu().double().numpy()
        ref = project(_reshape_transform(lm)(tokens).float().cpu().numpy())
        a, b = ours, ref.reshape(len(ref), -1).astype(np.float64)
        a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
        corrs.append(np.abs((a * b).sum(1)) / np.sqrt((a * a).sum(1) * (b * b).sum(1)))
    return np.concatenate(corrs)


def _over(batches: list[Any], fn: Callable[[Any], Any]) -> Callable[[], None]:
    """A callable running `fn` on every batch (what one timed repeat does)."""

    def all_batches() -> None:
        for b in batches:
            fn(b)

    return all_batches


def _inputs(lm: Any, kind: str, n: int) -> Any:
    """The bench's pixels (n, 3, h, w), float32 on the CPU."""
    import torch

    if kind == "noise":
        g = torch.Generator(device="cpu").manual_seed(0)
        return torch.randn(n, 3, *lm.layout.image_size, generator=g)
    from vitscope.vit.data.inputs import SynthSource

    [batch] = SynthSource(n, seed=0).batches(n, lm.input_geometry)
    return lm.preprocess(batch.images).cpu()


def run(args: argparse.Namespace) -> int:
    """Time the plain forward, vitscope's Eigen-CAM and the reference in one run; print JSON lines."""
    import torch

    from vitscope.vit.analysis.eigencam import Settings, analyse_batch
    from vitscope.vit.models import load_model

    lm = load_model(args.model, device=args.device)
    lm.to(args.device, getattr(torch, args.dtype))
    layer = args.layer % lm.num_layers
    x = _inputs(lm, args.inputs, args.images).to(args.device, lm.dtype)
    batches = list(x.split(args.batch_size))
    ref_batches = list(x[: min(args.reference_images, args.images)].split(args.batch_size))
    # Eigen-CAM alone: the baselines (attention rollout materialises every layer's attention) are off
    every = Settings(layers=tuple(range(lm.num_layers)), gradcam_layer=None, rollout=False)
    one = Settings(layers=(layer,), gradcam_layer=None, rollout=False)

    def forward(b: Any) -> None:
        with torch.no_grad():
            lm.forward(b)

    t_fwd = timed(_over(batches, forward), args.device, repeats=args.repeats)
    t_all = timed(_over(batches, lambda b: analyse_batch(lm, b, every)), args.device, repeats=args.repeats)
    t_one = timed(_over(batches, lambda b: analyse_batch(lm, b, one)), args.device, repeats=args.repeats)
    # built only now: pytorch-grad-cam hooks the model at construction and copies the hooked
    # activation to the CPU on every forward, which would slow the sides timed above too
    name, reference, release = _package_reference(lm, layer) or _reexpressed_reference(lm, layer)
    try:
        t_ref = timed(_over(ref_batches, reference), args.device, warmup=1, repeats=min(args.repeats, 3))
    finally:
        release()
    corr = _agreement(lm, ref_batches, layer)
    n_ref = sum(len(b) for b in ref_batches)
    rates = {
        "plain_forward": args.images / t_fwd,
        "vitscope_all_layers": args.images / t_all,
        "vitscope_one_layer": args.images / t_one,
        "reference_one_layer": n_ref / t_ref,
    }
    _emit_all(args, lm, layer, rates, name, n_ref, corr)
    return 0


def _emit_all(
    args: argparse.Namespace,
    lm: Any,
    layer: int,
    rates: dict[str, float],
    reference: str,
    n_ref: int,
    corr: np.ndarray,
) -> None:
    """One JSON line per measurement, then the summary with ratios, agreement and environment."""
    common = {
        "bench": "eigencam",
        "model": args.model,
        "batch_size": args.batch_size,
        "dtype": args.dtype,
        "inputs": args.inputs,
    }
    layers = {"plain_forward": None, "vitscope_all_layers": lm.num_layers, "vitscope_one_layer": 1}
    for what, rate in rates.items():
        images = n_ref if what == "reference_one_layer" else args.images
        emit({**common, "what": what, "images": images, "images_per_s": rate, "layers": layers.get(what, 1)})
    speedup = rates["vitscope_all_layers"] / rates["reference_one_layer"]
    vs_forward = rates["vitscope_all_layers"] / rates["plain_forward"]
    emit(
        {
            **common,
            "what": "summary",
            "reference": reference,
            "layer": layer,
            "speedup": speedup,
            "speedup_one_layer": rates["vitscope_one_layer"] / rates["reference_one_layer"],
            "vs_forward": vs_forward,
            "corr_min": float(corr.min()),
            "corr_mean": float(corr.mean()),
            "corr_images": len(corr),
            "targets_met": {
                f"speedup>={TARGET_SPEEDUP:g}": speedup >= TARGET_SPEEDUP,
                f"vs_forward>={TARGET_VS_FORWARD:g}": vs_forward >= TARGET_VS_FORWARD,
                f"corr_min>={TARGET_CORR:g}": float(corr.min()) >= TARGET_CORR,
            },
            **environment(args.device),
        }
    )
