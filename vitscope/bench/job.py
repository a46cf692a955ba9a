"""`vitscope bench job`: one job end to end through the real stack, beside the same analysis in process.

    vitscope bench job --kind head-importance --model random:vit-base --dataset synthscenes:1000 \\
        --param dtype='"bfloat16"'

Starts the services the API path needs (the embedded Redis, one Celery worker, the API; no
dashboard) on free ports in a temporary data folder, or uses `--url` of a running stack. A
warm-up job on a few images of the same request loads the model in the worker first, as a
serving worker already has it. The timed side is what a user waits for: `POST /jobs`, polling
`GET /jobs/{id}` until done, then every result fetched (arrays as `.npy`). The other side runs the same
normalized job in this process (`registry.execute`, what `vitscope run` calls), also after a
warm-up. One JSON line: both times, their ratio and the split of the stack's time.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vitscope.bench.common import add_job_arguments, emit, environment
from vitscope.contracts.errors import UserError

TARGET_RATIO = 1.3
POLL_S = 0.05
WARMUP_IMAGES = 16
GPU_MAX_JOB_GFLOP = 1e9
"""The API's job-cost cap in the stack this bench starts (the default is sized for a 2-core CPU)."""


def register(sub: Any) -> None:
    """Add the `job` benchmark."""
    p = sub.add_parser("job", help="a job through Redis + worker + API vs the same analysis in process")
    add_job_arguments(p, "head-importance")
    p.add_argument("--url", help="a running stack's API (default: start Redis, a worker and the API here)")
    p.add_argument("--device", default="auto", help="device of the in-process side")
    p.add_argument("--wait", type=float, default=600.0, help="seconds to wait for a job")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Time the job through the stack, then in process; print one JSON line."""
    import logging

    from vitscope.commands.run import parse_params

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll would bury the report
    params = parse_params(args.param)
    request = {"kind": args.kind, "model": args.model, "inputs": {"dataset": args.dataset}, "params": params}
    warmup = {**request, "inputs": {"dataset": _smaller(args.dataset)}}
    with _stack(args.url) as base:
        _through_api(base, warmup, args.wait)
        stack = _through_api(base, request, args.wait)
    local = _in_process(request, warmup, args.device)
    emit(
        {
            "bench": "job",
            "kind": args.kind,
            "model": args.model,
            "dataset": args.dataset,
            "params": params,
            **stack,
            "in_process_s": local,
            "ratio": stack["stack_s"] / local,
            f"ratio<={TARGET_RATIO:g}": stack["stack_s"] / local <= TARGET_RATIO,
            **environment("cuda" if _cuda() else "cpu"),
        }
    )
    return 0


def _smaller(dataset: str) -> str:
    """The same dataset spec with `WARMUP_IMAGES` images (another job id: no cache hit)."""
    name, _, rest = dataset.partition(":")
    _count, _, options = rest.partition(":")
    return f"{name}:{WARMUP_IMAGES}" + (f":{options}" if options else "")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@contextlib.contextmanager
def _stack(url: str | None) -> Iterator[str]:
    """Yield the API's base URL: `url`, or that of Redis + worker + API started here and stopped after."""
    if url:
        yield url.rstrip("/")
        return
    from vitscope.stack import (
        Child,
        LocalStackSettings,
        Stack,
        api_command,
        free_port,
        redis_command,
        wait_for_redis,
        worker_command,
    )

    with tempfile.TemporaryDirectory(prefix="vitscope-bench-") as folder:
        settings = LocalStackSettings(
            data_dir=Path(folder), redis_port=free_port(), api_port=free_port(), frontend_port=free_port()
        )
        # the API refuses jobs over a CPU-sized cost by default; a GPU deployment raises the cap
        env = {**Stack(settings).env(), "VITSCOPE_MAX_JOB_GFLOP": str(GPU_MAX_JOB_GFLOP)}
        children: list[Child] = []
        try:
            argv = redis_command(settings.redis_port, settings.data_dir, settings.redis_maxmemory)
            children.append(Child("redis", argv, env, sys.stderr).start())
            wait_for_redis(settings.effective_redis_url, children[0])
            children.append(Child("worker", worker_command(settings.queue), env, sys.stderr).start())
            children.append(Child("api", api_command(), env, sys.stderr).start())
            base = f"http://{settings.api_host}:{settings.api_port}"
            _wait_healthy(base, children)
            yield base
        finally:
            for child in reversed(children):
                child.stop()


def _wait_healthy(base: str, children: list[Any], timeout: float = 180.0) -> None:
    """Return once `GET /health` answers 200 (Redis reachable, a worker answering)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [c.name for c in children if c.poll() is not None]
        if dead:
            raise UserError(f"{', '.join(dead)} exited while the stack started (see its lines on stderr)")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise UserError(f"the stack at {base} was not healthy within {timeout:.0f} s")


def _through_api(base: str, request: dict[str, Any], wait: float) -> dict[str, float]:
    """Submit `request`, poll until done, fetch every result as .npy; return the times (s)."""
    import httpx

    from vitscope.bench.api_load import _ok

    with httpx.Client(base_url=f"{base}/api/v1", timeout=60) as client:
        start = time.perf_counter()
        job = client.post("/jobs", json=request)
        _ok(job)
        job_id = str(job.json()["id"])
        record = _done(client, job_id, wait)
        done = time.perf_counter()
        size = 0
        for name in record["results"]:
            # arrays as .npy bytes, the summary (a JSON object) as JSON
            params = {} if name == "summary" else {"format": "npy"}
            response = client.get(f"/jobs/{job_id}/results/{name}", params=params)
            _ok(response)
            size += len(response.content)
        end = time.perf_counter()
    return {
        "stack_s": end - start,
        "submit_to_done_s": done - start,
        "fetch_s": end - done,
        "result_bytes": size,
    }


def _done(client: Any, job_id: str, wait: float) -> dict[str, Any]:
    """Poll the job until it is done; return its record (`UserError` when it fails or times out)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        record = client.get(f"/jobs/{job_id}").json()
        if record["status"] == "done":
            return dict(record)
        if record["status"] in ("failed", "cancelled"):
            raise UserError(f"the benchmark's job {record['status']}: {record.get('error')}")
        time.sleep(POLL_S)
    raise UserError(f"job {job_id} was not done after {wait:.0f} s")


def _in_process(request: dict[str, Any], warmup: dict[str, Any], device: str) -> float:
    """Seconds of the same normalized job run in this process, after a warm-up job (model loaded)."""
    from vitscope.bench.common import timed
    from vitscope.contracts.jobs import normalize_job
    from vitscope.vit.analysis import registry
    from vitscope.vit.analysis.base import no_progress
    from vitscope.vit.device import resolve_device
    from vitscope.vit.models import load_model

    resolved = resolve_device(device)
    lm = load_model(request["model"], resolved)

    def fetch(name: str) -> bytes:
        raise UserError(f"the benchmark's jobs read no uploads ({name})")

    registry.execute(lm, normalize_job(warmup), fetch, no_progress)
    spec = normalize_job(request)
    return timed(lambda: registry.execute(lm, spec, fetch, no_progress), str(resolved), warmup=0, repeats=1)
