"""The live stack the browser tests drive, the test model, and where artifacts go."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis

from vitscope.contracts.store import JobRecord, job_key
from vitscope.stack import Child

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
DOC_SHOTS = Path(ROOT, os.environ["VITSCOPE_SCREENSHOTS"]) if os.environ.get("VITSCOPE_SCREENSHOTS") else None
"""Where the docs' screenshots are refreshed: only when asked (`make screenshots` sets
VITSCOPE_SCREENSHOTS=docs/screenshots), so a test run leaves the tracked PNGs alone."""
MODEL = os.environ.get("VITSCOPE_BROWSER_MODEL", "demo")
CHROMIUM = os.environ.get("VITSCOPE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DATASET = "synthscenes:16:seed=7"
SMALL_PARAMS: dict[str, dict[str, Any]] = {
    # small enough for a 2-core CPU, big enough to show every view
    "head-importance": {"batch_size": 16},
    "attention-profile": {"batch_size": 16},
    "attention-patterns": {"epochs": 8, "maps_per_head": 24, "batch_size": 16},
    "eigencam": {},
}


@dataclass
class LiveStack:
    """The running stack: the API (for setting up jobs), the dashboard URL and the service logs."""

    api_url: str
    web_url: str
    logs: Path
    redis_url: str = ""
    children: list[Child] = field(default_factory=list)

    @property
    def http(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.api_url}/api/v1", timeout=30)

    def submit(
        self, kind: str, inputs: dict[str, Any], params: dict[str, Any] | None = None, model: str = MODEL
    ) -> str:
        """POST a job (on the test model unless `model` names another); return its id."""
        body = {"kind": kind, "model": model, "inputs": inputs, "params": params or {}}
        with self.http as http:
            response = http.post("/jobs", json=body)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def wait(self, job_id: str, timeout: float = 300.0) -> dict[str, Any]:
        """Poll a job until it is done (fail the test if it fails or takes too long)."""
        deadline = time.monotonic() + timeout
        with self.http as http:
            while time.monotonic() < deadline:
                record = http.get(f"/jobs/{job_id}").json()
                if record["status"] == "done":
                    return dict(record)
                if record["status"] == "failed":
                    pytest.fail(f"job {job_id} ({record['kind']}) failed: {record['error']}")
                time.sleep(0.3)
        pytest.fail(f"job {job_id} not done after {timeout} s (worker log: {self.logs / 'worker.log'})")

    def computations(self) -> Counter[str]:
        """How many computations of each kind the store holds: every record's completed runs, plus one
        for each queued or running job (a link that recomputed a forgotten job counts too)."""
        redis = Redis.from_url(self.redis_url)
        counts: Counter[str] = Counter()
        try:
            for key in redis.scan_iter(job_key("*")):
                record = JobRecord.from_hash(redis.hgetall(key))
                counts[str(record.spec["kind"])] += record.runs + (record.status in ("queued", "running"))
        finally:
            redis.close()
        return counts

    def upload(self, name: str, data: bytes) -> str:
        """POST an image file; return its id."""
        with self.http as http:
            response = http.post("/images", files={"file": (name, data, "image/png")})
        assert response.status_code in (200, 201), response.text
        return str(response.json()["id"])

    def has_kind(self, kind: str) -> bool:
        """True when this checkout's worker can run `kind` (some analyses land later than others)."""
        module = {
            "attention-patterns": "vitscope/vit/analysis/attention_patterns.py",
            "scanpath": "vitscope/scanpath/job.py",
        }
        path = module.get(kind)
        return path is None or (ROOT / path).exists()


def screenshot(page: Any, name: str, for_docs: bool = False) -> Path:
    """Save a full-page screenshot under artifacts/screenshots (git-ignored), and a `for_docs` one
    in `DOC_SHOTS` too when VITSCOPE_SCREENSHOTS names it."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if for_docs and DOC_SHOTS is not None:
        DOC_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOC_SHOTS / path.name)
    return path


def record_timing(name: str, value: dict[str, Any]) -> None:
    """Merge one measurement into artifacts/timings.json."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "timings.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = value
    path.write_text(json.dumps(data, indent=2) + "\n")
