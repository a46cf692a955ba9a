"""`vitscope bench faults`: a batch of jobs survives killing Redis, the worker and the API once each.

    vitscope bench faults [--jobs 20] [--images 32] [--model random:vit-micro] [--timeout 900]

Starts its own `vitscope up` (free ports, a fresh data directory), submits `--jobs` distinct
Eigen-CAM jobs at once, and while they run SIGKILLs the process group of Redis, then of the
worker, then of the API (each once the previous one has recovered and a few more jobs are done),
as a crash would. The stack restarts each child; the worker's reaper re-queues the job that lost
its worker or its broker. The client polls through the API and retries across the outages.
Prints one JSON object: how many jobs finished, failed or were lost, each kill with how long the
stack took to restart the child and to serve again and, for each job running at that moment, how long until it was back on
the queue (`requeued_s`) or finished anyway (`finished_s`), re-queued jobs (attempts > 1), repeated
computations (runs > 1), the wall time and the versions. Exit status 0 when every job is done.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from vitscope.contracts.errors import UserError

KILLS = ("redis", "worker", "api")
HEALTH_CACHE_S = 6.0
"""Longer than the API's cache of the worker count (`VITSCOPE_HEALTH_CACHE_S`, 5 s)."""


def register(sub: Any) -> None:
    """Add the `faults` benchmark."""
    p = sub.add_parser(
        "faults", help="kill Redis, the worker and the API during a batch of jobs; count the lost"
    )
    p.add_argument("--jobs", type=int, default=20, help="jobs in the batch")
    p.add_argument("--images", type=int, default=32, help="SynthScenes images per job")
    p.add_argument("--model", default="random:vit-micro", help="model of every job")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the whole batch")
    p.add_argument("--log", help="where the stack's output goes (default: a temporary folder)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the fault drill; print the JSON report; return 0 when every job finished done."""
    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll would bury the report
    if args.jobs < len(KILLS) + 1:
        raise UserError(f"need --jobs >= {len(KILLS) + 1}: one kill lands between every few jobs")
    work = Path(tempfile.mkdtemp(prefix="vitscope-faults-"))
    log = Path(args.log) if args.log else work / "up.log"
    env, api = _stack_env(work)
    up = subprocess.Popen(
        [sys.executable, "-m", "vitscope", "up"], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    try:
        with httpx.Client(base_url=f"{api}/api/v1", timeout=10) as client:
            _wait(lambda: _healthy(client), 180, f"the stack did not come up (see {log})")
            report = _drill(client, work / "data", args)
    finally:
        up.send_signal(signal.SIGTERM)
        status = up.wait(90)
    report.update({"stack_exit": status, "log": str(log), "versions": _versions()})
    sys.stdout.write(json.dumps(report) + "\n")
    return 0 if report["done"] == args.jobs else 1


def _drill(client: Any, data_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    ids = [_submit(client, _job(i, args.images, args.model)) for i in range(args.jobs)]
    # a kill after every few finished jobs, so each lands while jobs run and more wait
    thresholds = [round((k + 1) * args.jobs / (len(KILLS) + 2)) for k in range(len(KILLS))]
    kills: list[dict[str, Any]] = []
    records: dict[str, dict[str, Any]] = {}
    deadline = started + args.timeout
    while time.monotonic() < deadline:
        records = _poll(client, ids, records)
        settled = [r for r in records.values() if r["status"] in ("done", "failed", "cancelled")]
        if len(settled) == len(ids):
            break
        for kill in kills:
            _follow(kill, records, started)
        if len(kills) < len(KILLS) and len(settled) >= thresholds[len(kills)]:
            # a job still stranded by an earlier kill is that kill's, not this one's
            stranded = {i for kill in kills for i, seen in kill["running"].items() if len(seen) == 1}
            running = {
                i: int(r.get("attempts", 0))
                for i, r in records.items()
                if r["status"] == "running" and i not in stranded
            }
            kills.append(_kill(client, data_dir, KILLS[len(kills)], started, len(settled)))
            kills[-1]["running"] = {job_id: {"attempts": n} for job_id, n in running.items()}
        time.sleep(0.5)
    final = list(records.values())
    return {
        "bench": "faults",
        "jobs": len(ids),
        "done": sum(r["status"] == "done" for r in final),
        "failed": sum(r["status"] == "failed" for r in final),
        "lost": len(ids) - sum(r["status"] in ("done", "failed") for r in final),
        "kills": kills,
        "requeued_jobs": sum(r.get("attempts", 0) > 1 for r in final),
        "repeated_computations": sum(max(r.get("runs", 0) - 1, 0) for r in final),
        "errors": sorted({r["error"] for r in final if r.get("error")}),
        "wall_s": round(time.monotonic() - started, 1),
        "images_per_job": args.images,
        "model": args.model,
    }


def _follow(kill: dict[str, Any], records: dict[str, dict[str, Any]], started: float) -> None:
    """Note when each job running at the kill went back to the queue (or started again), or finished."""
    since_kill = round(time.monotonic() - started - kill["at_s"], 1)
    for job_id, seen in kill.get("running", {}).items():
        record = records.get(job_id, {})
        if "requeued_s" in seen or "finished_s" in seen:
            continue
        if record.get("status") == "queued" or int(record.get("attempts", 0)) > seen["attempts"]:
            seen["requeued_s"] = since_kill
        elif record.get("status") in ("done", "failed"):
            seen["finished_s"] = since_kill


def _kill(client: Any, data_dir: Path, name: str, started: float, settled: int) -> dict[str, Any]:
    """SIGKILL child `name`'s process group; return when, how long until the stack had restarted it
    (`restarted_s`) and how long until the API answered healthy again (`serving_s`)."""
    pid = _child_pid(data_dir, name)
    if pid is None:
        raise UserError(f"the stack has no {name} to kill (see its stack.json in {data_dir})")
    at = time.monotonic()
    os.killpg(pid, signal.SIGKILL)
    _wait(lambda: _child_pid(data_dir, name) not in (pid, None), 180, f"the {name} was not restarted")
    restarted = time.monotonic() - at
    # the API caches the worker count for a few seconds: an answer from before the kill must not count
    time.sleep(max(0.0, HEALTH_CACHE_S - (time.monotonic() - at)))
    _wait(lambda: _healthy(client), 180, f"the stack did not recover after the {name} was killed")
    return {
        "child": name,
        "at_s": round(at - started, 1),
        "settled_before": settled,
        "restarted_s": round(restarted, 1),
        "serving_s": round(time.monotonic() - at, 1),
    }


def _child_pid(data_dir: Path, name: str) -> int | None:
    try:
        return int(json.loads((data_dir / "stack.json").read_text())["children"][name]["pid"])
    except (OSError, ValueError, KeyError):
        return None


def _job(i: int, images: int, model: str) -> dict[str, Any]:
    inputs = {"dataset": f"synthscenes:{images}:seed={7000 + i}"}
    params = {"batch_size": 4, "baselines": False, "sanity_check": False}
    return {"kind": "eigencam", "model": model, "inputs": inputs, "params": params}


def _submit(client: Any, job: dict[str, Any]) -> str:
    response = _retry(lambda: client.post("/jobs", json=job))
    if response.status_code != 202:
        raise UserError(f"the job was refused ({response.status_code}): {response.text[:300]}")
    return str(response.json()["id"])


def _poll(client: Any, ids: list[str], records: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Return the latest record of every job, keeping the last one seen while the API is down."""
    out = dict(records)
    for job_id in ids:
        if out.get(job_id, {}).get("status") in ("done", "failed", "cancelled"):
            continue
        try:
            response = client.get(f"/jobs/{job_id}")
        except Exception:  # the API or Redis is being restarted: ask again next round
            return out
        if response.status_code == 200:
            out[job_id] = response.json()
    return out


def _retry(call: Any, attempts: int = 60) -> Any:
    for _ in range(attempts):
        try:
            response = call()
            if response.status_code < 500:
                return response
        except Exception:  # connection refused while a child restarts
            pass
        time.sleep(1)
    raise UserError("the API did not answer for a minute")


def _healthy(client: Any) -> bool:
    try:
        response = client.get("/health")
        return response.status_code == 200 and response.json().get("workers", 0) >= 1
    except Exception:
        return False


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise UserError(what)


def _stack_env(work: Path) -> tuple[dict[str, str], str]:
    from vitscope.stack import free_port

    ports = {name: free_port() for name in ("REDIS", "API", "FRONTEND")}
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "VITSCOPE_REDIS_URL")}
    env.update({f"VITSCOPE_{name}_PORT": str(port) for name, port in ports.items()})
    env.update(
        {
            "VITSCOPE_DATA_DIR": str(work / "data"),
            "VITSCOPE_QUEUE": f"faults-{uuid.uuid4().hex[:6]}",
            "HF_HUB_OFFLINE": "1",
        }
    )
    return env, f"http://127.0.0.1:{ports['API']}"


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    from vitscope.stack import redis_executable

    redis = subprocess.run([redis_executable(), "--version"], capture_output=True, text=True).stdout.split()
    server = next((part.split("=", 1)[1] for part in redis if part.startswith("v=")), "unknown")
    return {
        "python": platform.python_version(),
        "celery": version("celery"),
        "kombu": version("kombu"),
        "redis_py": version("redis"),
        "redis_server": server,
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
    }
