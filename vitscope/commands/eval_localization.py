"""`vitscope eval-localization`: held-out localization and faithfulness of Eigen-CAM, rollout and Grad-CAM."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, get_args

from vitscope.contracts.datasets import parse_dataset_spec
from vitscope.contracts.errors import CliError
from vitscope.contracts.kinds.eigencam import EigenCamParams, SignRule


def register(subparsers: Any) -> None:
    """Add the `eval-localization` sub-command."""
    p = subparsers.add_parser(
        "eval-localization",
        help="held-out box accuracy, mass in box, deletion / insertion AUC of Eigen-CAM (per layer), "
        "attention rollout, Grad-CAM, a random map and a centre prior on SynthScenes",
        description=(
            "Threshold each map at 0.05..0.95 of its maximum, box the largest connected region and "
            "count it correct at IoU >= 0.5 with the object's box (also with the top-1 class required). "
            "Each method's threshold is chosen on a seeded calibration split and scored on the other "
            "images, with bootstrap intervals; mass in box, the pointing game and deletion / insertion "
            "AUC are reported on the same held-out images."
        ),
    )
    p.add_argument("model", help="model spec: demo, random:<family>-<size>, a hub id or a folder")
    p.add_argument("--dataset", default="synthscenes:500:seed=99", help="synthscenes:N[:seed=S]")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (auto: cuda if available)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--sign-rule", choices=get_args(SignRule), default="cls-attention")
    p.add_argument(
        "--relu",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ReLU the Eigen-CAM projection before min-max, as pytorch-grad-cam (default)",
    )
    p.add_argument("--gradcam-layer", type=int, default=None, help="default: the layer before the last")
    p.add_argument("--steps", type=int, default=8, help="steps of the deletion and insertion curves")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the calibration split, bootstrap and random map"
    )
    p.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        default="float32",
        help="precision of the model's passes (bfloat16: several times faster on a GPU; the maps move by "
        "its rounding)",
    )
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Run the evaluation and print the report; return the exit status."""
    import torch
    from tqdm import tqdm

    from vitscope.vit.analysis.eigencam import Settings
    from vitscope.vit.analysis.localization import evaluate
    from vitscope.vit.analysis.precision import model_in
    from vitscope.vit.data.inputs import SynthSource
    from vitscope.vit.models import load_model

    spec = parse_dataset_spec(args.dataset)
    if spec.name != "synthscenes":
        raise CliError(f"{args.dataset!r}: localization needs labelled boxes, use synthscenes:N[:seed=S]")
    if args.batch_size < 1:
        raise CliError("--batch-size must be at least 1")
    if args.steps < 2:
        raise CliError("--steps must be at least 2")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    lm = model_in(load_model(args.model, device), args.dtype)
    params = EigenCamParams(
        sign_rule=args.sign_rule, relu=args.relu, gradcam_layer=args.gradcam_layer, sanity_check=False
    )
    bar = tqdm(total=spec.n, desc="localization", unit="img", file=sys.stderr, disable=None)

    def progress(fraction: float, _message: str) -> None:
        bar.update(round(fraction * spec.n) - bar.n)

    settings = Settings.of(lm, params)
    source = SynthSource(spec.n, spec.seed)
    report = evaluate(lm, source, settings, args.batch_size, progress, steps=args.steps, seed=args.seed)
    bar.close()
    report = {"model": lm.spec, "dataset": str(spec), "device": str(device), "dtype": args.dtype, **report}
    print(json.dumps(report) if args.json else _table(report))
    return 0


def _table(report: dict[str, Any]) -> str:
    """A readable summary: one row per method, held-out means with their 95% intervals."""
    rows = [(f"eigencam L{layer}", r) for layer, r in report["eigencam"].items()]
    rows += [(name, report[name]) for name in ("rollout", "gradcam", "random", "centre") if name in report]
    metrics = ("localization", "mass_in_box", "pointing_hit", "deletion_auc", "insertion_auc")
    lines = [
        f"{report['model']} on {report['dataset']}: {report['images']} images "
        f"({report['calibration_images']} calibration, {report['held_out_images']} held out), "
        f"top-1 accuracy {report['top1_accuracy']:.3f}, best Eigen-CAM layer {report['best_layer']}",
        f"{'method':<14} {'@frac':>5} " + " ".join(f"{m:>22}" for m in metrics),
    ]
    for name, r in rows:
        cells = " ".join(f"{_estimate(r[m]):>22}" for m in metrics)
        lines.append(f"{name:<14} {r['threshold']:5.2f} {cells}")
    versus = report["best_layer_vs_random"]
    lines.append(f"best layer better than the random map on every metric: {versus['better_on_every_metric']}")
    return "\n".join(lines)


def _estimate(e: dict[str, Any]) -> str:
    """`0.512 [0.480, 0.545]`, or `–` where nothing was measured."""
    if e["mean"] is None:
        return "–"
    lo, hi = e["interval"]
    return f"{e['mean']:.3f} [{lo:.3f}, {hi:.3f}]"
