"""`vitscope bench run-path`: where `vitscope run` spends its wall time, process start to JSON out.

    vitscope bench run-path --kind eigencam --model random:vit-base --dataset synthscenes:1000 \\
        --param dtype='"bfloat16"' --param batch_size=256 --param faithfulness=false

Runs the command a user runs (`python -m vitscope.cli run KIND ... --json`) as a fresh process
`--repeats` times and times each from start to exit (`wall`). The processes share a cache folder
(`VITSCOPE_CACHE_DIR`) that starts empty: the first run draws a random model's seeded weights (and
Eigen-CAM's randomized copy) and keeps them, as a machine's first run does; later runs read them
(`cache`: "empty" or "kept", `vitscope.vit.models.seeded`). Then one more fresh process runs the
same command with a clock at every step (`phases`): importing torch, transformers and vitscope's
model layer, building the command line, loading the model, the analysis, writing the results. A
last line times the inputs alone (rendering or decoding every batch and preprocessing it on the
device, no model pass): what the analysis would take if it were free.

Start-up depends on whether the installed libraries have their bytecode: `pip install` writes it,
an image built with PYTHONDONTWRITEBYTECODE and no `compileall` recompiles every module of torch and
transformers in every process. Each line says which (`bytecode`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vitscope.bench.common import add_job_arguments, emit
from vitscope.contracts.errors import UserError


def register(sub: Any) -> None:
    """Add the `run-path` benchmark."""
    p = sub.add_parser("run-path", help="`vitscope run` wall time, process start to JSON, by phase")
    add_job_arguments(p, "eigencam")
    p.add_argument("--device", default="auto")
    p.add_argument("--repeats", type=int, default=2, help="timed fresh processes")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Time the command whole, then by phase, then its inputs alone; print JSON lines."""
    if args.repeats < 1:
        raise UserError(f"--repeats must be at least 1, got {args.repeats}")
    command = ["run", args.kind, "--model", args.model, "--dataset", args.dataset, "--device", args.device]
    for pair in args.param:
        command += ["--param", pair]
    common = {"bench": "run-path", "kind": args.kind, "model": args.model, "dataset": args.dataset}
    common["params"] = args.param
    common["bytecode"] = _bytecode()
    with tempfile.TemporaryDirectory(prefix="vitscope-run-path-") as tmp:
        env = {**os.environ, "VITSCOPE_CACHE_DIR": str(Path(tmp) / "cache")}  # empty: the first run draws
        for attempt in range(args.repeats):
            out = [*command, "--out", str(Path(tmp) / f"wall{attempt}"), "--json"]
            _, wall = _timed(["vitscope.cli", *out], env)
            cache = "empty" if attempt == 0 else "kept"
            emit({**common, "what": "wall", "attempt": attempt, "cache": cache, "wall_s": wall})
        out = [*command, "--out", str(Path(tmp) / "phases"), "--json"]
        launched = time.time()  # one clock for the wall and the child's first and last marks
        stdout, _ = _timed(["vitscope.bench.run_path", str(launched), *out], env)
        wall = time.time() - launched
        phases = json.loads(stdout.strip().splitlines()[-1])
        phases["exit_s"] = launched + wall - phases.pop("ended")
        emit({**common, "what": "phases", "cache": "kept", "wall_s": wall, **phases})
    emit({**common, "what": "inputs", **_inputs(args)})
    return 0


def _timed(module_argv: list[str], env: dict[str, str]) -> tuple[str, float]:
    """Run `python -m <module_argv>` in a fresh process; return its stdout and wall seconds, or raise
    `UserError` with its last line of stderr if it fails."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", *module_argv], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"the run failed (exit {done.returncode}): {last}")
    return done.stdout, wall


def _bytecode() -> bool:
    """Whether torch and transformers load from compiled bytecode (not recompiled per process)."""
    import importlib.util

    for name in ("torch", "transformers"):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            return False
        if not Path(importlib.util.cache_from_source(spec.origin)).exists():
            return False
    return True


def _inputs(args: argparse.Namespace) -> dict[str, Any]:
    """Seconds to bring every batch of the dataset to the device, preprocessed, with no model pass
    (SynthScenes' helpers, where there are any, started before the model loads, as in a run)."""
    import torch

    from vitscope.commands.run import parse_params
    from vitscope.contracts.jobs import normalize_job
    from vitscope.vit.analysis import registry
    from vitscope.vit.analysis.base import stream
    from vitscope.vit.data.inputs import start_rendering
    from vitscope.vit.device import resolve_device
    from vitscope.vit.models import load_model

    request = {"kind": args.kind, "model": args.model, "inputs": {"dataset": args.dataset}}
    spec = normalize_job({**request, "params": parse_params(args.param)})
    start_rendering(spec.inputs)  # as `vitscope run` does: SynthScenes' helpers start before the model
    lm = load_model(args.model, resolve_device(args.device))
    source = registry.get(spec.kind).open_source(spec.inputs, lambda key: b"", lm.labels)
    batch_size = int(getattr(spec.typed_params(), "batch_size", 64))
    start = time.perf_counter()
    images = 0
    for batch in stream(source, batch_size, lm.input_geometry, lambda *_: None, "inputs"):
        lm.preprocess(batch.images)
        images += len(batch.indices)
    if lm.device.type == "cuda":
        torch.cuda.synchronize()
    return {"images": images, "batch_size": batch_size, "inputs_s": time.perf_counter() - start}


def _phases(started: float, argv: list[str]) -> None:
    """In a fresh process started at `started` (epoch seconds): run `vitscope run` with `argv` as the
    `vitscope` command does (`vitscope.cli.entry`), printing the seconds of each phase as JSON when the
    results are written (`python`: the interpreter's own start, to this module)."""
    import gc

    from vitscope import cli

    gc.set_threshold(*cli.GC_THRESHOLD)
    clock: dict[str, Any] = {"python_s": time.time() - started}
    last = [time.perf_counter()]

    def mark(name: str) -> None:
        now = time.perf_counter()
        clock[f"{name}_s"] = now - last[0]
        last[0] = now
        if name == "write":
            import torch
            import transformers

            if torch.cuda.is_available():
                clock["device"] = torch.cuda.get_device_name()
            clock["torch"], clock["transformers"] = torch.__version__, transformers.__version__
            clock["ended"] = time.time()
            print(json.dumps(clock), file=answer, flush=True)

    import torch  # noqa: F401

    mark("import_torch")
    import transformers  # noqa: F401

    mark("import_transformers")
    import vitscope.vit.models  # noqa: F401  (transformers' modelling utilities, the hooks)

    mark("import_model_layer")
    args = cli.build_parser(argv).parse_args(argv)
    mark("command_line")
    answer, sys.stdout = sys.stdout, sys.stderr  # the run's own JSON is not this process's answer
    cli.finish(args, mark=mark)


if __name__ == "__main__":
    _phases(float(sys.argv[1]), sys.argv[2:])
