"""A small in-memory stand-in for the vitscope API, for fast tests of the dashboard's pages.

It speaks the HTTP contract of docs/CONTRACTS.md (ids are hashes of the request, errors are
`{"error": {...}}`) and serves synthetic results of the documented names and shapes for a model
of L layers, H heads and an (h, w) patch grid. The browser tests use the real stack instead.

Run it by hand for UI work: `python -m tests.frontend.fake_api 8000`.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import FastAPI, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from PIL import Image, UnidentifiedImageError


@dataclass
class FakeModel:
    """Sizes of the fake model and data: L layers, H heads, (h, w) grid, N images, k clusters."""

    layers: int = 3
    heads: int = 4
    grid: tuple[int, int] = (4, 4)
    images: int = 6
    clusters: int = 4
    running_polls: int = 0  # how many GETs a new job reports "running" before "done"


@dataclass
class FakeState:
    """What the fake API holds."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": message, "problems": []}}, status_code=status)


def make_app(model: FakeModel | None = None) -> FastAPI:
    """The fake API app (routes under /api/v1)."""
    model = model or FakeModel()
    state = FakeState()
    app = FastAPI()
    app.state.fake = state

    @app.get("/api/v1/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "redis": True, "workers": 1}

    @app.get("/api/v1/models")
    def models() -> list[dict[str, str]]:
        return [
            {"spec": "demo", "description": "the shipped demo ViT"},
            {"spec": "random:vit-micro", "description": "random weights, 2 layers"},
        ]

    @app.post("/api/v1/images")
    async def upload(file: UploadFile) -> Any:
        data = await file.read()
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                width, height, fmt = img.width, img.height, str(img.format).lower()
        except (UnidentifiedImageError, OSError):
            return _error(
                415, f"{file.filename} is not an image vitscope can read (PNG, JPEG, WebP, BMP, GIF, TIFF)"
            )
        blob_id = hashlib.sha256(data).hexdigest()
        state.blobs[blob_id] = data
        return {"id": blob_id, "width": width, "height": height, "format": fmt}

    @app.get("/api/v1/images/{blob_id}")
    def image(blob_id: str) -> Any:
        if blob_id not in state.blobs:
            return _error(404, f"no uploaded image with id {blob_id}")
        return Response(state.blobs[blob_id], media_type="image/png")

    @app.post("/api/v1/jobs", status_code=202)
    async def submit(request: Request) -> Any:
        body = await request.json()
        if body.get("kind") not in KINDS:
            return _error(422, f"unknown kind {body.get('kind')!r}")
        spec = {
            "kind": body["kind"],
            "model": body.get("model", "demo"),
            "inputs": body.get("inputs") or {},
            "params": {**DEFAULTS[body["kind"]], **(body.get("params") or {})},
        }
        job_id = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:24]
        state.jobs.setdefault(
            job_id,
            {
                "id": job_id,
                **spec,
                "message": "",
                "error": None,
                "created": "2026-01-01T00:00:00Z",
                "updated": "2026-01-01T00:00:00Z",
            },
        )
        state.polls.setdefault(job_id, 0)
        return _view(job_id)

    def _view(job_id: str) -> dict[str, Any]:
        record = state.jobs[job_id]
        done = state.polls[job_id] >= model.running_polls
        names = sorted(results_for(record, model)) if done else []
        return {
            **record,
            "status": "done" if done else "running",
            "progress": 1.0 if done else state.polls[job_id] / max(model.running_polls, 1),
            "results": [*names, "summary"] if done else [],
            "dashboard_url": "",
        }

    @app.get("/api/v1/jobs/{job_id}")
    def job(job_id: str) -> Any:
        if job_id not in state.jobs:
            return _error(404, f"no job {job_id}: submit it with POST /api/v1/jobs")
        state.polls[job_id] += 1
        return _view(job_id)

    @app.get("/api/v1/jobs/{job_id}/results/{name}")
    def result(job_id: str, name: str, format: str = "json") -> Any:
        if job_id not in state.jobs:
            return _error(404, f"no job {job_id}")
        record = state.jobs[job_id]
        if name == "summary":
            return summary_for(record, model)
        arrays = results_for(record, model)
        if name not in arrays:
            return _error(404, f"job {job_id} has no result {name!r}")
        buffer = io.BytesIO()
        np.save(buffer, arrays[name], allow_pickle=False)
        return Response(buffer.getvalue(), media_type="application/octet-stream")

    return app


KINDS = ("head-importance", "attention-profile", "attention-patterns", "eigencam", "scanpath")
DEFAULTS: dict[str, dict[str, Any]] = {
    "head-importance": {"partial_layer": None, "partial_head": None, "partial_images": [0]},
    "attention-profile": {},
    "attention-patterns": {"detail_layer": 0, "detail_head": 0, "detail_image": 0},
    "eigencam": {"layers": None},
    "scanpath": {"target": None, "boxes": None},
}
MODES = ["none", "cls_row", "cls_column", "patch_to_patch", "cls_row_column", "whole_head"]


def _rng(record: dict[str, Any]) -> np.random.Generator:
    seed = int(hashlib.sha256(json.dumps(record["params"], sort_keys=True).encode()).hexdigest()[:8], 16)
    return np.random.default_rng(seed)


def _n_images(record: dict[str, Any], m: FakeModel) -> int:
    images = record["inputs"].get("images")
    return len(images) if images else m.images


def results_for(record: dict[str, Any], m: FakeModel) -> dict[str, np.ndarray]:
    """Synthetic arrays of the documented names and shapes for a job record."""
    rng = _rng(record)
    kind = record["kind"]
    L, H, (h, w), N = m.layers, m.heads, m.grid, _n_images(record, m)
    if kind == "head-importance":
        modes = len(MODES)
        return {
            "accuracy_drop": rng.uniform(-0.05, 0.3, (L, H)),
            "prob_drop": rng.uniform(0, 0.5, (L, H)),
            "loss_change": rng.normal(0, 0.4, (L, H)),
            "taylor": rng.uniform(0, 1, (L, H)),
            "layer_impact": rng.uniform(0, 1, (L, H)),
            "prob_after": rng.uniform(0, 1, (N, L, H)),
            "prob_base": rng.uniform(0.5, 1, (N,)),
            "labels": np.arange(N) % 3,
            "predictions": (np.arange(N) + 1) % 3,
            "partial_top5_idx": np.tile(np.arange(5), (modes, 1, 1)),
            "partial_top5_prob": np.sort(rng.uniform(0, 0.5, (modes, 1, 5)))[..., ::-1].copy(),
            "partial_target_prob": rng.uniform(0, 1, (modes, 1)),
        }
    if kind == "attention-profile":
        R = max(h, w)
        return {
            "ring_strength_patch": rng.uniform(0, 0.1, (L, H, R)),
            "ring_strength_cls": rng.uniform(0, 0.1, (L, H, R)),
            "entropy_patch": rng.uniform(0, np.log(R), (L, H)),
            "entropy_cls": rng.uniform(0, np.log(R), (L, H)),
            "entropy_per_image": rng.uniform(0, np.log(R), (N, L, H)),
            "entropy_per_image_cls": rng.uniform(0, np.log(R), (N, L, H)),
            "mean_distance_px": rng.uniform(0, 100, (L, H)),
            "sink_share": rng.uniform(0, 1, (L, H)),
        }
    if kind == "attention-patterns":
        return _patterns(rng, m)
    if kind == "eigencam":
        return {
            "images": rng.integers(0, 255, (N, 32, 32, 3), dtype=np.uint8),
            "cam": rng.uniform(0, 1, (N, L, h, w)),
            "rollout": rng.uniform(0, 1, (N, h, w)),
            "gradcam": rng.uniform(0, 1, (N, h, w)),
            "cam_random": rng.uniform(0, 1, (N, L, h, w)),
            "rank_corr": rng.uniform(-1, 1, (N, L)),
            "top5_idx": np.tile(np.arange(5), (N, 1)),
            "top5_prob": np.tile([0.5, 0.2, 0.1, 0.05, 0.01], (N, 1)),
        }
    boxes = np.array(
        [[10, 10, 60, 50], [80, 20, 130, 70], [30, 90, 90, 140], [120, 100, 180, 150]], dtype=float
    )
    return {
        "boxes": boxes,
        "scanpath": np.array([1, 2, 1, 3]),
        "probabilities": np.array([0.5, 0.3, 0.4, 0.9]),
        "density": np.array([0.1, 0.6, 0.5, 0.9]),
        "image": rng.integers(0, 255, (160, 200, 3), dtype=np.uint8),
    }


def _patterns(rng: np.random.Generator, m: FakeModel) -> dict[str, np.ndarray]:
    L, H, (h, w), k = m.layers, m.heads, m.grid, m.clusters
    T = 1 + h * w
    matrix = rng.uniform(0, 1, (T, T))
    matrix /= matrix.sum(1, keepdims=True)
    out: dict[str, np.ndarray] = {
        "detail_matrix": matrix,
        "detail_hist_counts": rng.integers(0, 50, 20),
        "detail_hist_edges": np.linspace(0, 1, 21),
        "bipartite": np.array([[0, 1, 0.9, 1], [3, 2, 0.5, 0], [5, 5, 0.2, 0], [0, 7, 0.4, 1]], dtype=float),
    }
    per_head = 8
    for q in ("patch", "cls"):
        out[f"embedding_{q}"] = rng.normal(0, 1, (L * H * per_head, 2))
        out[f"sample_head_{q}"] = np.repeat(np.arange(L * H), per_head)
        out[f"head_points_{q}"] = rng.normal(0, 1, (L * H, 2))
        out[f"cluster_{q}"] = rng.integers(0, k, L * H * per_head)
        out[f"prototypes_{q}"] = rng.uniform(0, 1, (k, h, w))
        out[f"head_mix_{q}"] = rng.dirichlet(np.ones(k), L * H)
    return out


def summary_for(record: dict[str, Any], m: FakeModel) -> dict[str, Any]:
    """A synthetic summary with the documented keys."""
    kind = record["kind"]
    if kind == "head-importance":
        params = record["params"]
        return {
            "accuracy": 0.9,
            "spearman": 0.7,
            "modes": MODES,
            "label_names": ["disk", "square", "ring", "x", "y"],
            "partial_layer": params.get("partial_layer"),
            "partial_head": params.get("partial_head"),
            "partial_images": params.get("partial_images"),
        }
    if kind == "attention-profile":
        R = max(m.grid)
        return {
            "rings": R,
            "max_entropy": float(np.log(R)),
            "max_entropy_cls": float(np.log(R)),
            "grid": list(m.grid),
        }
    if kind == "attention-patterns":
        return {"grid": list(m.grid), "layers": m.layers, "heads": m.heads, "clusters": m.clusters}
    if kind == "eigencam":
        return {
            "labels": ["disk"] * _n_images(record, m),
            "grid": list(m.grid),
            "layers": list(range(m.layers)),
            "top5": [
                [
                    {"index": i, "label": f"class {i}", "prob": p}
                    for i, p in zip(range(5), [0.5, 0.2, 0.1, 0.05, 0.01], strict=True)
                ]
            ]
            * _n_images(record, m),
        }
    return {"target": 3}


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(
        make_app(FakeModel(running_polls=3)),
        host="127.0.0.1",
        port=int(sys.argv[1]) if len(sys.argv) > 1 else 8000,
    )
