"""`vitscope info MODEL` (layers, heads, token layout, labels) and `vitscope eval MODEL --dataset ...` (top-1).

vitscope info demo --json
vitscope eval demo --dataset synthscenes:1000:seed=1 --json
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from vitscope.contracts.errors import UserError

if TYPE_CHECKING:
    from vitscope.vit.analysis.base import Progress
    from vitscope.vit.data.inputs import ImageSource
    from vitscope.vit.models import LoadedModel


def register(sub: Any) -> None:
    """Add the `info` and `eval` commands."""
    info = sub.add_parser("info", help="describe a model: layers, heads, token layout, labels")
    info.add_argument("model", help="demo, random:<family>-<size>, a hub id or a folder")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(handler=run_info)
    ev = sub.add_parser("eval", help="top-1 accuracy of a model on a labelled dataset")
    ev.add_argument("model", help="demo, random:<family>-<size>, a hub id or a folder")
    ev.add_argument("--dataset", required=True, metavar="SPEC", help="synthscenes:N[:seed=S]")
    ev.add_argument("--json", action="store_true", help="print JSON")
    ev.add_argument("--device", default="auto", help="auto (default: cuda if available), cpu, cuda, cuda:N")
    ev.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    ev.set_defaults(handler=run_eval)


def run_info(args: argparse.Namespace) -> int:
    """Print `lm.describe()`; return 0."""
    from vitscope.vit.models import load_model

    described = load_model(args.model, "cpu").describe()
    if args.json:
        sys.stdout.write(json.dumps(described) + "\n")
    else:
        labels = described["labels"]
        shown = {
            **described,
            "labels": f"{len(labels)}: {', '.join(labels[:10])}{', ...' if len(labels) > 10 else ''}",
        }
        sys.stdout.write("".join(f"{key}: {value}\n" for key, value in shown.items()))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Print the top-1 accuracy (`top1`), the number of images (`n`) and per-class accuracy; return 0."""
    from vitscope.commands.run import ProgressBar
    from vitscope.contracts.jobs import Inputs
    from vitscope.vit.data.inputs import open_source
    from vitscope.vit.device import resolve_device
    from vitscope.vit.models import load_model

    if args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    try:
        inputs = Inputs(dataset=args.dataset)
    except ValidationError as exc:
        raise UserError(f"--dataset: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from exc
    lm = load_model(args.model, resolve_device(args.device))
    if not lm.classifier:
        raise UserError(f"{args.model} is a backbone without a classifier: top-1 accuracy needs one")
    source = open_source(inputs, _no_uploads, lm.labels)
    with ProgressBar() as progress:
        scores = evaluate(lm, source, args.batch_size, progress)
    if args.json:
        sys.stdout.write(json.dumps(scores) + "\n")
    else:
        sys.stdout.write(f"top-1 accuracy {scores['top1']:.4f} on {scores['n']} images of {args.dataset}\n")
    return 0


def evaluate(lm: LoadedModel, source: ImageSource, batch_size: int, progress: Progress) -> dict[str, Any]:
    """Return `{"top1", "n", "per_class": {name: accuracy or None}}` over a labelled source, streamed."""
    import numpy as np
    import torch

    classes = len(lm.labels)
    correct, total = np.zeros(classes, np.int64), np.zeros(classes, np.int64)
    with torch.no_grad():
        for batch in source.batches(batch_size, lm.input_geometry):
            labels = batch.labels
            if (labels < 0).any():
                raise UserError("eval needs labelled images; this dataset has unlabelled ones")
            if (labels >= classes).any():
                raise UserError(f"the dataset has label {labels.max()} but the model has {classes} classes")
            predicted = lm.forward(lm.preprocess(batch.images)).argmax(-1).cpu().numpy()
            np.add.at(total, labels, 1)
            np.add.at(correct, labels, predicted == labels)
            progress(total.sum() / len(source), f"eval: {total.sum()}/{len(source)} images")
    per_class = {
        name: (float(c / t) if t else None) for name, c, t in zip(lm.labels, correct, total, strict=True)
    }
    return {"top1": float(correct.sum() / total.sum()), "n": int(total.sum()), "per_class": per_class}


def _no_uploads(blob_id: str) -> bytes:
    raise UserError(f"eval reads built-in datasets only (asked for upload {blob_id})")
