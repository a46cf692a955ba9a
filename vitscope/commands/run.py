"""`vitscope run KIND`: the analysis a worker runs, in this process, results written to a folder.

    vitscope run eigencam --model demo --images cat.png dog.jpg --out out/cam --json
    vitscope run head-importance --model demo --dataset synthscenes:256 --out out/hi --param batch_size=32

Each array goes to `<out>/<name>.npy`, the summary to `<out>/summary.json`; `--json` prints the
summary (plus `"outputs": <out>`) on stdout. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitscope.contracts import kinds
from vitscope.contracts.errors import UserError

if TYPE_CHECKING:
    from vitscope.vit.analysis.base import AnalysisResult


def register(sub: Any) -> None:
    """Add the `run` command."""
    declared = kinds.all_kinds()
    p = sub.add_parser(
        "run",
        help="run an analysis in-process and write its results to a folder",
        description="kinds:\n" + "\n".join(f"  {k.name:<20} {k.help}" for k in declared.values()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("kind", choices=list(declared), help="the analysis (see `vitscope kinds`)")
    p.add_argument(
        "--model", default="demo", help="demo (default), random:<family>-<size>, a hub id or a folder"
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--layout",
        metavar="LAYOUT",
        help="scanpath: built-in search scenes on grid:RxC or free:N (with --n, --seed)",
    )
    source.add_argument("--images", nargs="+", type=Path, metavar="FILE", help="image files")
    source.add_argument("--dataset", metavar="SPEC", help="synthscenes:N[:seed=S] (or synthsearch:...)")
    source.add_argument("--zip", type=Path, metavar="FILE", help="an ImageFolder zip, one folder per class")
    p.add_argument(
        "--labels", nargs="+", metavar="LABEL", help="with --images: class index or name per image"
    )
    p.add_argument("--n", type=int, default=100, help="with --layout: number of scenes")
    p.add_argument("--seed", type=int, default=0, help="with --layout: scene seed")
    p.add_argument(
        "--out",
        type=Path,
        help="folder for <name>.npy and summary.json (default: vitscope-runs/<kind>-<job id>)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument("--device", default="auto", help="auto (default: cuda if available), cpu, cuda, cuda:N")
    p.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="analysis parameter (JSON value)"
    )
    p.set_defaults(handler=run, quick_exit=True)  # see `vitscope.cli.finish`


def run(args: argparse.Namespace, mark: Callable[[str], None] = lambda _phase: None) -> int:
    """Run the analysis, write its outputs, print the summary; return 0.

    `mark(phase)` is called as each phase ends (`load_model`, `analysis`, `write`): the run-path
    bench's clock (`vitscope.bench.run_path`)."""
    from vitscope.contracts.jobs import normalize_job
    from vitscope.vit.data.inputs import start_rendering
    from vitscope.vit.device import resolve_device, start_in_background

    blobs = read_files([*(args.images or []), *([args.zip] if args.zip else [])])
    raw = {
        "kind": args.kind,
        "model": args.model,
        "inputs": inputs_of(args, list(blobs)),
        "params": parse_params(args.param),
    }
    checked = normalize_job(raw)  # refuse a bad request before spending time on the model
    start_rendering(checked.inputs)  # SynthScenes' helpers start while torch is imported
    device = resolve_device(args.device)
    start_in_background(device)  # CUDA starts while the model layer is imported
    from vitscope.vit.analysis import registry
    from vitscope.vit.models import load_model

    lm = load_model(args.model, device)
    mark("load_model")
    if args.labels:
        raw["inputs"]["labels"] = label_indices(args.labels, lm.labels)
    spec = normalize_job(raw)
    with ProgressBar() as progress:
        result = registry.execute(lm, spec, blobs.__getitem__, progress)
    mark("analysis")
    out = args.out or Path("vitscope-runs") / f"{spec.kind}-{spec.id}"
    write_outputs(result, out)
    report(result, out, as_json=args.json)
    mark("write")
    return 0


def read_files(paths: list[Path]) -> dict[str, bytes]:
    """Return each file's bytes keyed by their sha256 (the id an upload would get)."""
    blobs = {}
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror}") from exc
        blobs[hashlib.sha256(data).hexdigest()] = data
    return blobs


def inputs_of(args: argparse.Namespace, ids: list[str]) -> dict[str, Any]:
    """Return the job's `inputs` for the chosen source (files are named by their content hash)."""
    if args.dataset:
        return {"dataset": args.dataset}
    if args.layout:
        return {"dataset": f"synthsearch:{args.n}:seed={args.seed}:layout={args.layout}"}
    if args.zip:
        return {"zip": ids[-1]}
    if args.images and len(ids) != len(args.images):
        raise UserError("the same image is given twice: give each file once")
    return {"images": ids}


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """Return `--param key=value` pairs as a dict; values are JSON when they parse as JSON, else text."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise UserError(f"--param {pair!r}: expected key=value, e.g. --param batch_size=16")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def label_indices(labels: list[str], class_names: list[str]) -> list[int]:
    """Return class indices for labels given as indices or class names (case-insensitive)."""
    lookup = {name.lower(): i for i, name in enumerate(class_names)}
    out = []
    for label in labels:
        if label.isdigit():
            out.append(int(label))
        elif label.lower() in lookup:
            out.append(lookup[label.lower()])
        else:
            raise UserError(
                f"label {label!r} is not a class of the model (classes: {', '.join(class_names)})"
            )
    return out


def write_outputs(result: AnalysisResult, out: Path) -> None:
    """Write each array as `<out>/<name>.npy` (no pickle) and the summary as `<out>/summary.json`."""
    import numpy as np

    from vitscope.contracts.store import to_jsonable

    out.mkdir(parents=True, exist_ok=True)
    for name, array in result.arrays.items():
        np.save(out / f"{name}.npy", array, allow_pickle=False)
    (out / "summary.json").write_text(json.dumps(to_jsonable(result.summary), indent=2, allow_nan=False))


def report(result: AnalysisResult, out: Path, as_json: bool) -> None:
    """Print the summary as JSON (with `outputs`), or one line per written array."""
    from vitscope.contracts.store import to_jsonable

    if as_json:
        sys.stdout.write(
            json.dumps({**to_jsonable(result.summary), "outputs": str(out)}, allow_nan=False) + "\n"
        )
        return
    lines = [f"{name}: {tuple(a.shape)} {a.dtype}" for name, a in result.arrays.items()]
    sys.stdout.write(f"wrote {len(lines)} arrays and summary.json to {out}\n  " + "\n  ".join(lines) + "\n")


class ProgressBar:
    """A tqdm bar on stderr, usable as the analysis' `Progress` callback."""

    def __enter__(self) -> ProgressBar:
        from tqdm import tqdm

        self.bar = tqdm(
            total=1000, file=sys.stderr, bar_format="{l_bar}{bar}| {elapsed}<{remaining}", leave=False
        )
        return self

    def __call__(self, fraction: float, message: str) -> None:
        """Move the bar to `fraction` (0..1) and show `message`."""
        self.bar.set_description_str(message, refresh=False)
        self.bar.update(max(0, round(fraction * 1000) - self.bar.n))

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
