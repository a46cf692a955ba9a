"""`vitscope bench api-load`: many concurrent clients reading one cached result from the API.

    vitscope bench api-load --clients 50 --requests 5000 [--url http://127.0.0.1:8000] [--job ID]

Without `--job` it first computes a small Eigen-CAM job (one generated image) and waits for it.
Each client holds one keep-alive connection and sends its next request as soon as the last
answer arrived (a closed loop), after a short warm-up. The client is a few lines of asyncio on
raw sockets rather than an HTTP library, so that on a small machine the load generator
takes as little CPU from the server as possible. Prints one JSON object: p50/p95/p99
latency in ms and requests per second.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from vitscope.contracts.errors import UserError

WARMUP_PER_CLIENT = 5


def register(sub: Any) -> None:
    """Add the `api-load` benchmark."""
    p = sub.add_parser("api-load", help="p50/p95/p99 latency of concurrent clients fetching a cached result")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the API's base URL")
    p.add_argument("--clients", type=int, default=50, help="concurrent clients (connections)")
    p.add_argument("--requests", type=int, default=5000, help="measured requests in total")
    p.add_argument("--job", help="a done job's id (default: compute a small eigencam job first)")
    p.add_argument("--result", default="cam", help="which result to fetch")
    p.add_argument("--format", choices=["json", "npy"], default="json")
    p.add_argument("--model", default="random:vit-micro", help="model of the job computed first")
    p.add_argument("--wait", type=float, default=300.0, help="seconds to wait for that job")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the load; print the JSON report; return 0."""
    if args.clients < 1 or args.requests < args.clients:
        raise UserError("need --clients >= 1 and --requests >= --clients")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll would bury the report
    base = args.url.rstrip("/")
    job = args.job or prepare_job(base, args.model, args.wait)
    path = f"/api/v1/jobs/{job}/results/{args.result}" + ("?format=npy" if args.format == "npy" else "")
    size = check_result(base + path)
    parts = urlsplit(base)
    latencies, errors, seconds = asyncio.run(
        load(parts.hostname or "127.0.0.1", parts.port or 80, path, args.clients, args.requests)
    )
    report = {"bench": "api-load", "url": base + path, "clients": args.clients, "result_bytes": size}
    report.update(summarize(latencies, errors, seconds))
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


def summarize(latencies: list[float], errors: int, seconds: float) -> dict[str, Any]:
    """Return request count, errors, p50/p95/p99/max latency (ms) and requests per second."""
    import numpy as np

    ms = np.asarray(latencies) * 1e3
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": round(float(p50), 2),
        "p95_ms": round(float(p95), 2),
        "p99_ms": round(float(p99), 2),
        "max_ms": round(float(ms.max()), 2),
        "rps": round(len(latencies) / seconds, 1),
    }


def prepare_job(base: str, model: str, wait: float) -> str:
    """Upload a generated image, submit an eigencam job on it and wait until done; return its id."""
    import httpx

    with httpx.Client(base_url=f"{base}/api/v1", timeout=30) as client:
        image = client.post("/images", files={"file": ("bench.png", _png(), "image/png")})
        _ok(image)
        job = client.post(
            "/jobs", json={"kind": "eigencam", "model": model, "inputs": {"images": [image.json()["id"]]}}
        )
        _ok(job)
        job_id = str(job.json()["id"])
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            record = client.get(f"/jobs/{job_id}").json()
            if record["status"] == "done":
                return job_id
            if record["status"] == "failed":
                raise UserError(f"the benchmark's job failed: {record['error']}")
            time.sleep(0.5)
    raise UserError(
        f"job {job_id} was not done after {wait:.0f} s: is a worker running (GET /api/v1/health)?"
    )


def check_result(url: str) -> int:
    """Fetch the result once; return its size in bytes, or raise `UserError` with the API's message."""
    import httpx

    response = httpx.get(url, timeout=30)
    _ok(response)
    return len(response.content)


def _ok(response: Any) -> None:
    if response.status_code >= 300:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        raise UserError(f"{response.request.method} {response.request.url}: {response.status_code} {message}")


def _png() -> bytes:
    import numpy as np
    from PIL import Image

    out = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


async def load(
    host: str, port: int, path: str, clients: int, requests: int
) -> tuple[list[float], int, float]:
    """Run `clients` closed-loop clients for `requests` requests in all; return (latencies s, errors, seconds)."""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: keep-alive\r\n\r\n".encode()
    counts = [requests // clients + (i < requests % clients) for i in range(clients)]
    latencies: list[float] = []
    errors = 0
    warmed = asyncio.Barrier(clients + 1)

    async def client(count: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        for _ in range(WARMUP_PER_CLIENT):
            writer.write(request)
            await read_response(reader)
        await warmed.wait()
        for _ in range(count):
            start = time.perf_counter()
            writer.write(request)
            status = await read_response(reader)
            latencies.append(time.perf_counter() - start)
            errors += status != 200
        writer.close()

    tasks = [asyncio.create_task(client(n)) for n in counts]
    await warmed.wait()
    start = time.perf_counter()
    await asyncio.gather(*tasks)
    return latencies, errors, time.perf_counter() - start


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response with a Content-Length body; return its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = next(
        (int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:")), 0
    )
    await reader.readexactly(length)
    return status
