"""`vitscope train-scanpath` and `vitscope eval-scanpath`: the OAT scanpath model.

Training data are SynthSearch scenes with scanpaths of the calibrated simulated searcher
(`vitscope.scanpath.simulator`), split 80/10/10 by scene; evaluation compares OAT (greedy and
sampled) and the baselines with held-out simulated scanpaths on the scenes of `--dataset`.
Torch is imported inside the handlers so that `vitscope --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from vitscope.contracts.errors import CliError
from vitscope.scanpath import SHIPPED_CHECKPOINT


def register(subparsers: Any) -> None:
    """Add the `train-scanpath` and `eval-scanpath` sub-commands."""
    _register_train(subparsers)
    _register_eval(subparsers)


def _register_train(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train-scanpath",
        help="train OAT on SynthSearch scenes with simulated scanpaths (use a GPU)",
        description="Teacher-forced training with early stopping on the validation behavioural delta.",
    )
    p.add_argument(
        "--dataset", default="synthsearch:1000:seed=0", help="synthsearch:N[:seed=S][:layout=grid:RxC]"
    )
    p.add_argument("--subjects", type=int, default=6, help="simulated scanpaths per scene")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--d-model", type=int, default=512)
    p.add_argument("--layers", type=int, default=4, help="encoder and decoder layers each")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ffn", type=int, default=None, help="feed-forward width (default: d-model)")
    p.add_argument("--crop", default="150x93", help="appearance crop size HxW (published: 150x93)")
    p.add_argument(
        "--appearance",
        choices=("cnn", "vit"),
        default="cnn",
        help="cnn: a small CNN on object crops, trained end to end (published); "
        "vit: the --vit-model's last-block patch tokens pooled inside each object box",
    )
    p.add_argument("--vit-model", default="demo", help="model spec whose features --appearance vit reads")
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--patience", type=int, default=30)
    p.add_argument("--val-samples", type=int, default=10, help="sampled scanpaths per scene for val delta")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (auto: cuda if available)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument(
        "--out", type=Path, required=True, help="checkpoint folder (config.json + model.safetensors)"
    )
    p.add_argument("--json", action="store_true", help="print the training summary as one JSON object")
    p.set_defaults(handler=train_main)


def _register_eval(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "eval-scanpath",
        help="score OAT and the baselines against held-out simulated scanpaths",
        description="Sequence score, MultiMatch, behavioural statistics and delta per method.",
    )
    p.add_argument(
        "--dataset", default="synthsearch:500:seed=5", help="synthsearch:N[:seed=S][:layout=grid:RxC]"
    )
    p.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT, help="default: the shipped model")
    p.add_argument(
        "--samples", type=int, default=100, help="sampled scanpaths per scene (OAT, random, simulator)"
    )
    p.add_argument("--subjects", type=int, default=6, help="reference (simulated) scanpaths per scene")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling")
    p.add_argument(
        "--vit-model",
        default=None,
        help="for a ViT-appearance checkpoint (default: the model it was trained on)",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (auto: cuda if available)")
    p.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    p.set_defaults(handler=eval_main)


def parse_crop(text: str) -> tuple[int, int]:
    """Parse `HxW` into (h, w); raise CliError otherwise."""
    m = re.fullmatch(r"([0-9]+)x([0-9]+)", text.strip())
    if not m:
        raise CliError(f"--crop {text!r} is not HxW, e.g. 150x93")
    return int(m[1]), int(m[2])


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise CliError(f"--{name.replace('_', '-')} must be at least 1, got {value}")


def train_main(args: argparse.Namespace) -> int:
    """Train OAT and write the checkpoint; return the exit status."""
    _check_positive(
        epochs=args.epochs, subjects=args.subjects, batch_size=args.batch_size, layers=args.layers
    )
    import torch

    from vitscope.scanpath.datasets import split_by_trial, synth_records
    from vitscope.scanpath.model import OAT, OATConfig
    from vitscope.scanpath.train import TrainConfig, train_model

    records = synth_records(args.dataset, args.subjects)
    feature_dim = 0
    if args.appearance == "vit":
        records = _with_vit_features(records, args.vit_model, args.device)
        feature_dim = int(records[0].trial.features.shape[1])  # type: ignore[union-attr]  # set just above
    config = OATConfig(
        d_model=args.d_model, encoder_layers=args.layers, decoder_layers=args.layers, heads=args.heads,
        ffn=args.ffn or args.d_model, appearance=args.appearance, crop_size=parse_crop(args.crop),
        feature_dim=feature_dim, feature_model=args.vit_model if args.appearance == "vit" else "",
    )  # fmt: skip
    train, val, _ = split_by_trial(records, seed=args.seed)
    cfg = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, patience=args.patience, seed=args.seed,
        device=args.device, bf16=args.bf16, val_samples=args.val_samples, progress=sys.stderr.isatty(),
    )  # fmt: skip
    torch.manual_seed(args.seed)  # the initial weights too, so that --seed reproduces a run
    result = train_model(OAT(config), train, val, cfg, out=args.out)
    summary = {"out": str(args.out), "dataset": args.dataset, **result.summary()}
    if args.json:
        json.dump(summary, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(f"best epoch {result.best_epoch}: val delta {result.best_delta:.4f}; saved to {args.out}")
    return 0


def eval_main(args: argparse.Namespace) -> int:
    """Evaluate OAT and the baselines; print the scores; return the exit status."""
    _check_positive(samples=args.samples, subjects=args.subjects)
    from vitscope.scanpath.datasets import SynthTrials, synth_references
    from vitscope.scanpath.evaluate import evaluate
    from vitscope.scanpath.model import load_checkpoint
    from vitscope.scanpath.train import resolve_device

    if not (args.checkpoint / "model.safetensors").is_file():
        raise CliError(
            f"no scanpath checkpoint in {args.checkpoint}: train one with "
            "'vitscope train-scanpath --out DIR' and pass --checkpoint DIR"
        )
    model = load_checkpoint(args.checkpoint, resolve_device(args.device))
    # scenes are rendered again chunk by chunk when scored, so memory does not grow with N
    synth = SynthTrials(args.dataset)
    refs = synth_references(synth, args.subjects)
    trials: Sequence[Any] = synth
    if model.config.appearance == "vit":  # features for every scene: these are kept in memory
        vit = args.vit_model or model.config.feature_model or "demo"
        trials = _vit_features(list(trials), vit, args.device)
    result = evaluate(model, trials, refs, args.samples, args.seed, progress=sys.stderr.isatty())
    report = {
        "dataset": args.dataset,
        "checkpoint": str(args.checkpoint),
        "samples": args.samples,
        "reference_behaviour": result.reference.as_dict(),
        "methods": {name: s.as_dict() for name, s in result.methods.items()},
    }
    if args.json:
        json.dump(report, sys.stdout)
        sys.stdout.write("\n")
    else:
        _print_table(report)
    return 0


def _vit_features(trials: list[Any], spec: str, device: str) -> list[Any]:
    """`trials` with per-object features of the ViT `spec` (the "vit" appearance)."""
    from vitscope.scanpath.proposals import with_object_features
    from vitscope.scanpath.train import resolve_device
    from vitscope.vit.models import load_model

    return with_object_features(load_model(spec, device=str(resolve_device(device))), trials)


def _with_vit_features(records: list[Any], spec: str, device: str) -> list[Any]:
    """Scanpath records whose trials carry per-object features of the ViT `spec`."""
    trials = list(dict.fromkeys(r.trial for r in records))  # trials compare by identity
    featured = dict(zip(trials, _vit_features(trials, spec, device), strict=True))
    return [replace(r, trial=featured[r.trial]) for r in records]


def _print_table(report: dict[str, Any]) -> None:
    print(f"{'method':<12} {'SS':>6} {'vector':>7} {'dir':>6} {'length':>7} {'pos':>6} {'delta':>6}")
    for name, s in report["methods"].items():
        mm = s["multimatch"]
        print(
            f"{name:<12} {s['sequence_score']:6.3f} {mm['vector']:7.3f} {mm['direction']:6.3f} "
            f"{mm['length']:7.3f} {mm['position']:6.3f} {s['delta']:6.3f}"
        )
