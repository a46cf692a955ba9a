"""`vitscope eval-localization`: weakly-supervised localization of Eigen-CAM, rollout and Grad-CAM."""

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
        help="box accuracy of Eigen-CAM (per layer), attention rollout and Grad-CAM on SynthScenes",
        description=(
            "Threshold each map at 0.05..0.95 of its maximum, box the largest connected region and "
            "count it correct at IoU >= 0.5 with the object's box (also with the top-1 class required)."
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
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Run the evaluation and print the report; return the exit status."""
    import torch
    from tqdm import tqdm

    from vitscope.vit.analysis.eigencam import Settings
    from vitscope.vit.analysis.localization import evaluate
    from vitscope.vit.data.inputs import SynthSource
    from vitscope.vit.models import load_model

    spec = parse_dataset_spec(args.dataset)
    if spec.name != "synthscenes":
        raise CliError(f"{args.dataset!r}: localization needs labelled boxes, use synthscenes:N[:seed=S]")
    if args.batch_size < 1:
        raise CliError("--batch-size must be at least 1")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    lm = load_model(args.model, device)
    params = EigenCamParams(
        sign_rule=args.sign_rule, relu=args.relu, gradcam_layer=args.gradcam_layer, sanity_check=False
    )
    bar = tqdm(total=spec.n, desc="localization", unit="img", file=sys.stderr, disable=None)

    def progress(fraction: float, _message: str) -> None:
        bar.update(round(fraction * spec.n) - bar.n)

    report = evaluate(lm, SynthSource(spec.n, spec.seed), Settings.of(lm, params), args.batch_size, progress)
    bar.close()
    report = {"model": lm.spec, "dataset": str(spec), "device": str(device), **report}
    print(json.dumps(report) if args.json else _table(report))
    return 0


def _table(report: dict[str, Any]) -> str:
    """A readable summary: one row per method, best fraction and 0.15, with and without the class."""
    rows = [(f"eigencam L{layer}", r) for layer, r in report["eigencam"].items()]
    rows += [(name, report[name]) for name in ("rollout", "gradcam") if name in report]
    lines = [
        f"{report['model']} on {report['dataset']}: {report['images']} images, "
        f"top-1 accuracy {report['top1_accuracy']:.3f}, best Eigen-CAM layer {report['best_layer']}",
        f"{'method':<14} {'best':>6} {'@frac':>6} {'@0.15':>6} {'best+cls':>9} {'@0.15+cls':>10}",
    ]
    for name, r in rows:
        lines.append(
            f"{name:<14} {r['best']:6.3f} {r['best_threshold']:6.2f} {r['at_0.15']:6.3f} "
            f"{r['best_with_class']:9.3f} {r['at_0.15_with_class']:10.3f}"
        )
    return "\n".join(lines)
