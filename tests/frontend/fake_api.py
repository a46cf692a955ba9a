"""A small in-memory stand-in for the vitscope API, for fast tests of the dashboard's pages.

It speaks the HTTP contract of docs/CONTRACTS.md (ids are hashes of the request, errors are
`{"error": {...}}`) for every declared kind (`vitscope.contracts.kinds`, extra kinds included):
params are validated and defaulted by the kind's params model, and results are generated from
the kind's declaration for a model of L layers, H heads and an (h, w) patch grid: arrays of the
declared names, dims and dtypes, and a summary that validates against the kind's summary model
(with the common `model` block). `VALUES` and `SUMMARIES` make the values plausible per kind;
a kind they do not name still gets schema-valid results. The browser tests use the real stack.

A model spec naming a backbone (`imgfocus:dinov2-s`, or any spec containing `backbone`) has no
classifier, as the real analyses see it: `LEFT_OUT` drops its class-based arrays (kept, with a
linear probe, for head-importance on labelled images when `probe` is on), its summaries say so
(`objective`, `metrics`, `left_out`, `probe`), and its `model` block has no labels. A classifier
gets no task-free head-importance arrays. Eigen-CAM's `crop_boxes` place each analysed image in
the picture it came from: an uploaded one's centre square, a built-in one's whole frame.

Run it by hand for UI work: `python -m tests.frontend.fake_api 8000`.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import numpy as np
from fastapi import FastAPI, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ValidationError

from vitscope.contracts import kinds
from vitscope.contracts.errors import UserError
from vitscope.contracts.kinds import ArraySpec, Kind


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
    held: set[str] = field(default_factory=set)  # jobs that stay "running" until removed from here


def _error(status: int, message: str, problems: list[dict[str, Any]] | None = None) -> JSONResponse:
    body = {"status": status, "message": message, "problems": problems or []}
    return JSONResponse({"error": body}, status_code=status)


def _spec(body: dict[str, Any]) -> dict[str, Any] | JSONResponse:
    """The normalized spec of a job request (params validated and defaulted by its kind), or a 422."""
    try:
        kind = kinds.get(body.get("kind"))
        params = kind.params.model_validate(body.get("params") or {})
    except UserError as exc:
        return _error(422, str(exc))
    except ValidationError as exc:
        problems = [{"loc": ["params", *e["loc"]], "msg": e["msg"]} for e in exc.errors()]
        return _error(422, f"invalid params for {kind.name}", problems)
    inputs = body.get("inputs") or {}
    return {
        "kind": kind.name,
        "model": body.get("model", "demo"),
        "inputs": inputs,
        "params": params.model_dump(mode="json"),
    }


def make_app(model: FakeModel | None = None) -> FastAPI:
    """The fake API app (routes under /api/v1)."""
    model = model or FakeModel()
    state = FakeState()
    app = FastAPI()
    app.state.fake = state
    app.state.slices = []  # (job id, array, index) of every result read: what the views fetched

    @app.get("/api/v1/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "redis": True, "workers": 1}

    @app.get("/api/v1/models")
    def models() -> list[dict[str, str]]:
        return [
            {"spec": "demo", "description": "the shipped demo ViT"},
            {"spec": "random:vit-micro", "description": "random weights, 2 layers"},
            {"spec": BACKBONE, "description": "a DINOv2-S backbone (no classifier)"},
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
        spec = _spec(await request.json())
        if isinstance(spec, JSONResponse):
            return spec
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
        done = state.polls[job_id] >= model.running_polls and job_id not in state.held
        names = sorted(results_for(record, model, state.blobs)) if done else []
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
    def result(
        job_id: str, name: str, format: str = "json", index: Annotated[list[int] | None, Query()] = None
    ) -> Any:
        if job_id not in state.jobs:
            return _error(404, f"no job {job_id}")
        record = state.jobs[job_id]
        if name == "summary":
            return summary_for(record, model)
        arrays = results_for(record, model, state.blobs)
        if name not in arrays:
            return _error(404, f"job {job_id} has no result {name!r}")
        array = arrays[name]
        at = tuple(index or ())
        if len(at) > array.ndim or any(not 0 <= i < n for i, n in zip(at, array.shape, strict=False)):
            return _error(400, f"index {list(at)} is outside {name!r} of shape {array.shape}")
        app.state.slices.append((job_id, name, at))
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array[at]), allow_pickle=False)
        return Response(buffer.getvalue(), media_type="application/octet-stream")

    return app


# -- results generated from the declaration -------------------------------------------------------

LABELS = ["disk", "square", "ring", "x", "y"]
MODES = ["none", "cls_row", "cls_column", "patch_to_patch", "cls_row_column", "whole_head"]
PATCH = 16
SIZES: dict[str, int] = {
    "R": 4,
    "Rc": 4,
    "t": 2,
    "E": 5,
    "bins": 20,
    "edges": 21,
    "links": 4,
    "modes": len(MODES),
    "objects": 4,
    "steps": 4,
    "height": 32,
    "width": 32,
}
"""Sizes of the symbolic dims beyond the model's (L, H, N, h, w, LH, T, k, M); others get DEFAULT_SIZE."""
KIND_SIZES: dict[str, dict[str, int]] = {
    "scanpath": {"height": 160, "width": 200},
    "eigencam": {"k": 5, "points": 9},
    "head-importance": {"k": 5},
    "head-pruning": {"k": 5},
    "head-detail": {"K": 4, "h": 48, "w": 48},
}
DEFAULT_SIZE = 3
UPLOADED_SIZE = (48, 64)
"""(height, width) of an uploaded picture the fake does not hold (a test's made-up image id)."""

BACKBONE = "imgfocus:dinov2-s"
CLASSIFIER, PROBE, TASK_FREE = "classifier", "probe", "task-free"
HEAD_CLASS_ARRAYS = (
    "accuracy_drop",
    "prob_drop",
    "loss_change",
    "taylor",
    "taylor_raw",
    "prob_after",
    "prob_base",
    "labels",
    "predictions",
)
HEAD_TASK_FREE_ARRAYS = (
    "cls_cosine_drop",
    "patch_change",
    "embedding_taylor",
    "embedding_taylor_raw",
    "cls_cosine_after",
)
CAM_CLASS_ARRAYS = ("top5_idx", "top5_prob", "gradcam", "rank_corr_gradcam")
LEFT_OUT: dict[str, dict[str, tuple[str, ...]]] = {
    "head-importance": {CLASSIFIER: HEAD_TASK_FREE_ARRAYS, PROBE: (), TASK_FREE: HEAD_CLASS_ARRAYS},
    "eigencam": {CLASSIFIER: (), PROBE: CAM_CLASS_ARRAYS, TASK_FREE: CAM_CLASS_ARRAYS},
    "head-pruning": {
        CLASSIFIER: ("cls_cosine",),
        PROBE: (),
        TASK_FREE: ("target_prob", "top5_idx", "top5_prob"),
    },
}
"""The declared arrays a kind leaves out, by objective (as the real analyses do)."""
NO_CAM_CLASSES = (
    "the model is a backbone without a classifier: there are no class scores to rank or differentiate"
)


@dataclass
class FakeJob:
    """One job of the fake: its record, the fake model, and what follows from them."""

    record: dict[str, Any]
    model: FakeModel
    pictures: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def kind(self) -> Kind:
        return kinds.get(self.record["kind"])

    @property
    def backbone(self) -> bool:
        """True for a model spec naming a checkpoint without a classification head."""
        spec = str(self.record.get("model", ""))
        return spec.startswith("imgfocus") or "backbone" in spec

    @property
    def no_probe(self) -> str | None:
        """Why a backbone gets no linear probe (None when it gets one, or has a classifier)."""
        inputs = self.record["inputs"]
        if not self.backbone:
            return None
        if not self.params.get("probe", True):
            return "the model has no classifier and probe=false"
        if inputs.get("images") and not inputs.get("labels"):
            return "the model has no classifier and the images have no labels for a probe"
        return None

    @property
    def objective(self) -> str:
        """Where the job's class numbers come from: classifier, probe or task-free."""
        if not self.backbone:
            return CLASSIFIER
        return TASK_FREE if self.no_probe or self.kind.name != "head-importance" else PROBE

    def produces(self, name: str) -> bool:
        """Whether the job has declared array `name` (its objective may leave it out)."""
        return name not in LEFT_OUT.get(self.kind.name, {}).get(self.objective, ())

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.record["params"])

    @property
    def single(self) -> bool:
        """One uploaded image: a declared leading `N?` dim is dropped, as the real analyses do."""
        return len(self.record["inputs"].get("images") or []) == 1

    @property
    def images(self) -> int:
        images = self.record["inputs"].get("images")
        return len(images) if images else self.model.images

    @cached_property
    def rng(self) -> np.random.Generator:
        digest = hashlib.sha256(json.dumps(self.record["params"], sort_keys=True).encode()).hexdigest()
        return np.random.default_rng(int(digest[:8], 16))

    @cached_property
    def sizes(self) -> dict[str, int]:
        """The size of each symbolic dim for this job."""
        m = self.model
        (h, w), lh = m.grid, m.layers * m.heads
        own = {"L": m.layers, "H": m.heads, "N": self.images, "h": h, "w": w, "LH": lh, "T": 1 + h * w}
        if self.kind.name == "head-detail" and self.params.get("layer") is not None:
            own["L"] = 1  # one layer kept
        if (
            self.kind.name == "eigencam"
        ):  # Eigen-CAM's layers, rollout, Grad-CAM (a classifier's), random, centre
            own |= {"methods": m.layers + 3 + (not self.backbone), "S": m.layers + 1, "n": self.images}
        return {**SIZES, **own, "k": m.clusters, "M": lh * 8, **KIND_SIZES.get(self.kind.name, {})}

    def size(self, dim: str | int) -> int:
        """A dim's size: ints as they are, symbols from `sizes` (`M_patch` is `M`), else DEFAULT_SIZE."""
        if isinstance(dim, int):
            return dim
        symbol = dim.rstrip("?")
        return self.sizes.get(symbol, self.sizes.get(symbol.rsplit("_", 1)[0], DEFAULT_SIZE))

    def shape(self, spec: ArraySpec) -> tuple[int, ...]:
        """The shape of a declared array for this job."""
        dims = spec.dims[1:] if self.single and spec.dims and spec.dims[0] == "N?" else spec.dims
        return tuple(self.size(d) for d in dims)

    def model_block(self) -> dict[str, Any]:
        """The summary's common `model` block for the fake model."""
        m = self.model
        h, w = m.grid
        return {
            "spec": self.record.get("model", "demo"),
            "layers": m.layers,
            "heads": m.heads,
            "grid": [h, w],
            "patch_size": PATCH,
            "image_size": [h * PATCH, w * PATCH],
            "prefix_tokens": ["cls"],
            "labels": [] if self.backbone else LABELS,
            "classifier": not self.backbone,
        }

    def original_size(self, index: int) -> tuple[int, int]:
        """(height, width) of the picture input `index` came from: an uploaded one's (UPLOADED_SIZE when
        the fake does not hold it), else the analysed size."""
        images = self.record["inputs"].get("images")
        if not images:
            return self.sizes["height"], self.sizes["width"]
        data = self.pictures.get(images[index])
        if data is None:
            return UPLOADED_SIZE
        with Image.open(io.BytesIO(data)) as img:
            return img.height, img.width


Fill = Callable[[FakeJob, tuple[int, ...]], np.ndarray]


def _fixed(values: Any) -> Fill:
    """A fill that repeats `values` over the leading dims of the shape."""
    return lambda _job, shape: np.broadcast_to(np.asarray(values), shape).copy()


def _uniform(low: float, high: float) -> Fill:
    return lambda job, shape: job.rng.uniform(low, high, shape)


def _class_cycle(offset: int) -> Fill:
    return lambda _job, shape: (np.arange(shape[0]) + offset) % 3


def _attention_rows(job: FakeJob, shape: tuple[int, ...]) -> np.ndarray:
    matrix = job.rng.uniform(0, 1, shape)
    return matrix / matrix.sum(-1, keepdims=True)


def _log_rings(job: FakeJob, shape: tuple[int, ...]) -> np.ndarray:
    return job.rng.uniform(0, np.log(job.sizes["R"]), shape)


def _original_sizes(job: FakeJob, shape: tuple[int, ...]) -> np.ndarray:
    return np.asarray([job.original_size(i) for i in range(shape[0])], dtype=np.int64)


def _crop_boxes(job: FakeJob, shape: tuple[int, ...]) -> np.ndarray:
    """The centre square of each picture (a shortest-edge resize, then a centre crop)."""
    boxes = []
    for height, width in (job.original_size(i) for i in range(shape[0])):
        side = min(height, width)
        x0, y0 = (width - side) / 2, (height - side) / 2
        boxes.append([x0, y0, x0 + side, y0 + side])
    return np.asarray(boxes, dtype=np.float32)


def _curves(job: FakeJob, shape: tuple[int, ...], falling: bool) -> np.ndarray:
    """Deletion (falling) or insertion (rising) curves (N, M, points) from 0.9 to 0.1 or back, noisy."""
    line = np.linspace(0.9, 0.1, shape[-1]) if falling else np.linspace(0.1, 0.9, shape[-1])
    return np.clip(line + job.rng.normal(0, 0.05, shape), 0, 1)


BOXES = [[10, 10, 60, 50], [80, 20, 130, 70], [30, 90, 90, 140], [120, 100, 180, 150]]
VALUES: dict[str, dict[str, Fill]] = {
    "head-importance": {
        "accuracy_drop": _uniform(-0.05, 0.3),
        "prob_drop": _uniform(0, 0.5),
        "loss_change": lambda job, shape: job.rng.normal(0, 0.4, shape),
        "prob_base": _uniform(0.5, 1),
        "labels": _class_cycle(0),
        "predictions": _class_cycle(1),
        "cls_cosine_drop": _uniform(0, 0.2),
        "patch_change": _uniform(0, 0.5),
        "cls_cosine_after": _uniform(0.7, 1),
    },
    "head-detail": {
        "attention": lambda job, shape: _attention_rows(job, shape).astype(np.float16),
        "hist_counts": lambda job, shape: job.rng.integers(0, 50, shape),
        "hist_edges": lambda _job, shape: np.broadcast_to(np.linspace(0, 1, shape[-1]), shape).copy(),
        "links": _fixed([[0, 1, 0.9, 1], [3, 2, 0.5, 0], [5, 5, 0.2, 0], [0, 7, 0.4, 1]]),
    },
    "head-pruning": {
        "top5_idx": _fixed(np.arange(5)),
        "top5_prob": lambda job, shape: np.sort(job.rng.uniform(0, 0.5, shape))[..., ::-1].copy(),
        "cls_cosine": _uniform(0.6, 1),
    },
    "attention-profile": {
        "ring_strength_patch": _uniform(0, 0.1),
        "ring_strength_cls": _uniform(0, 0.1),
        "entropy_patch": _log_rings,
        "entropy_cls": _log_rings,
        "entropy_per_image": _log_rings,
        "entropy_per_image_cls": _log_rings,
        "mean_distance_px": _uniform(0, 100),
    },
    "attention-patterns": {
        "embedding": lambda job, shape: job.rng.normal(0, 1, shape),
        "head_points": lambda job, shape: job.rng.normal(0, 1, shape),
        "sample_head": lambda job, shape: np.arange(shape[0]) // 8,
        "cluster": lambda job, shape: job.rng.integers(0, job.sizes["k"], shape),
        "head_mix": lambda job, shape: job.rng.dirichlet(np.ones(shape[1]), shape[0]),
        "typical_index": lambda job, shape: job.rng.integers(-1, job.sizes["M"], shape),
    },
    "eigencam": {
        "rank_corr": _uniform(-1, 1),
        "rank_corr_rollout": _uniform(-1, 1),
        "rank_corr_gradcam": _uniform(-1, 1),
        "top5_idx": _fixed(np.arange(5)),
        "top5_prob": _fixed([0.5, 0.2, 0.1, 0.05, 0.01]),
        "labels": _class_cycle(0),
        "crop_boxes": _crop_boxes,
        "original_sizes": _original_sizes,
        "deletion_auc": _uniform(0.05, 0.4),
        "insertion_auc": _uniform(0.4, 0.9),
        "deletion_curve": lambda job, shape: _curves(job, shape, falling=True),
        "insertion_curve": lambda job, shape: _curves(job, shape, falling=False),
        "mass_in_box": _uniform(0.1, 0.9),
        "pointing_hit": lambda job, shape: (job.rng.random(shape) < 0.6).astype(np.float64),
        "box_share": _uniform(0.1, 0.4),
        "cascade_rank_corr": lambda job, shape: np.sort(job.rng.uniform(0, 1, shape), axis=1)[:, ::-1].copy(),
    },
    "scanpath": {
        "boxes": _fixed(np.array(BOXES, dtype=float)),
        "scanpath": _fixed([1, 2, 1, 3]),
        "probabilities": _fixed([0.5, 0.3, 0.4, 0.9]),
        "density": _fixed([0.1, 0.6, 0.5, 0.9]),
        "targets": _fixed(3),
    },
}
"""Plausible values of a kind's arrays by name (`embedding` serves `embedding_patch` and `_cls`)."""


def _schema_valid(job: FakeJob, spec: ArraySpec, shape: tuple[int, ...]) -> np.ndarray:
    """Values of the declared dtype: floats in [0, 1], small non-negative integers, random flags."""
    if spec.dtype in ("float", "float16"):
        return job.rng.uniform(0, 1, shape).astype(np.float16 if spec.dtype == "float16" else np.float64)
    if spec.dtype == "bool":
        return job.rng.random(shape) < 0.5
    if spec.dtype == "uint8":
        return job.rng.integers(0, 256, shape, dtype=np.uint8)
    return job.rng.integers(0, 3, shape, dtype=np.int8 if spec.dtype == "int8" else np.int64)


def results_for(
    record: dict[str, Any], m: FakeModel, pictures: Mapping[str, bytes] | None = None
) -> dict[str, np.ndarray]:
    """Every array the job's kind declares (optional ones included) but those its objective leaves
    out, of its declared dims and dtype; `pictures` are the uploaded files by id."""
    job = FakeJob(record, m, pictures or {})
    tuned = VALUES.get(job.kind.name, {})
    out = {}
    for name, spec in job.kind.results.items():
        if not job.produces(name):
            continue
        fill = tuned.get(name) or tuned.get(name.rsplit("_", 1)[0])
        shape = job.shape(spec)
        out[name] = fill(job, shape) if fill else _schema_valid(job, spec, shape)
    return out


# -- summaries generated from the declaration ------------------------------------------------------


PER_HEAD = (
    "accuracy_drop",
    "prob_drop",
    "loss_change",
    "layer_impact",
    "taylor",
    "cls_cosine_drop",
    "patch_change",
    "embedding_taylor",
)
"""The per-head (L, H) head-importance metrics, in the summary's order."""


def _head_importance(job: FakeJob) -> dict[str, Any]:
    params = job.params
    classes = job.objective != TASK_FREE
    return {
        "images": job.images,
        **_coverage(job),
        "probe": _probe(job) if job.objective == PROBE else None,
        "labelled": job.images if classes else 0,
        "accuracy": 0.9 if classes else None,
        "spearman": 0.7,
        "label_names": LABELS if classes else [],
        "dtype": params["dtype"],
    }


def _coverage(job: FakeJob) -> dict[str, Any]:
    """`objective`, `metrics` (the per-head metrics present) and `left_out` (the others, with why)."""
    why = "the model has a classifier: the task-free metrics are for backbones"
    return {
        "objective": job.objective,
        "metrics": [name for name in PER_HEAD if job.produces(name)],
        "left_out": {name: job.no_probe or why for name in PER_HEAD if not job.produces(name)},
    }


def _probe(job: FakeJob) -> dict[str, Any]:
    test = job.images // 2
    return {
        "held_out_accuracy": 0.87,
        "train_accuracy": 0.95,
        "train_images": job.images - test,
        "test_images": test,
        "classes": LABELS,
        "l2": 0.01,
        "steps": 50,
        "seed": job.params.get("seed", 0),
    }


def _attention_profile(job: FakeJob) -> dict[str, Any]:
    rings = job.sizes["R"]
    return {
        "images": job.images,
        "rings": rings,
        "rings_cls": job.sizes["Rc"],
        "ring_sizes": [8 * r or 1 for r in range(rings)],
        "max_entropy": float(np.log(rings)),
        "max_entropy_cls": float(np.log(job.sizes["Rc"])),
        "grid": list(job.model.grid),
        "patch_size": PATCH,
    }


def _attention_patterns(job: FakeJob) -> dict[str, Any]:
    per_query = {q: job.model.clusters for q in ("patch", "cls")}
    return {"images": job.images, "layers": job.model.layers, "heads": job.model.heads, "clusters": per_query}


def _head_detail(job: FakeJob) -> dict[str, Any]:
    layer = job.params["layer"]
    return {
        "image": job.params["image"],
        "images": job.images,
        "layers": list(range(job.model.layers)) if layer is None else [layer],
        "label": -1,
        "prediction": None if job.backbone else 0,
    }


def _head_pruning(job: FakeJob) -> dict[str, Any]:
    left_out = dict.fromkeys(LEFT_OUT["head-pruning"][job.objective], NO_CAM_CLASSES)
    return {
        **{key: job.params[key] for key in ("image", "layer", "head")},
        "modes": MODES,
        "label": -1,
        "target": None if job.backbone else 0,
        "left_out": left_out,
    }


def _eigencam_trust(job: FakeJob) -> dict[str, Any]:
    """The faithfulness and sanity fields, as the means of the job's own arrays (as the analysis sums them)."""
    arrays = results_for(job.record, job.model, job.pictures)
    layers = list(range(job.model.layers))
    names = [f"eigencam/{layer}" for layer in layers] + ["rollout"]
    names += ([] if job.backbone else ["gradcam"]) + ["random", "centre"]
    means = {key: arrays[key].mean(0).tolist() for key in ("deletion_auc", "insertion_auc", "mass_in_box")}
    gaps = {n: i - d for n, d, i in zip(names, means["deletion_auc"], means["insertion_auc"], strict=True)}
    best = max(names[:-2], key=lambda n: gaps[n])
    full = np.abs(arrays["cascade_rank_corr"][:, -1]).mean(0)
    sanity = {
        f"eigencam/{layer}": {"rank_corr": float(v), "randomization": "cascade", "passed": bool(v < 0.5)}
        for layer, v in zip(layers, full, strict=True)
    }
    steps = job.size("points") - 1
    return {
        "faithfulness_methods": names,
        "faithfulness_steps": steps,
        "curve_fractions": [s / steps for s in range(steps + 1)],
        "faithfulness_score": "CLS embedding cosine" if job.backbone else "class probability",
        "deletion_auc_by_method": means["deletion_auc"],
        "insertion_auc_by_method": means["insertion_auc"],
        "mass_in_box_by_method": means["mass_in_box"],
        "pointing_by_method": arrays["pointing_hit"].mean(0).tolist(),
        "box_share": float(arrays["box_share"].mean()),
        "most_faithful": {"method": best, "insertion_minus_deletion": gaps[best]},
        "sanity_threshold": 0.5,
        "sanity_reference": "job",
        "sanity": sanity,
    }


def _eigencam(job: FakeJob) -> dict[str, Any]:
    top5 = [{"index": i, "label": f"class {i}", "prob": p} for i, p in enumerate([0.5, 0.2, 0.1, 0.05, 0.01])]
    classes = job.objective == CLASSIFIER
    return {
        "images": job.images,
        "labels": ["disk" if classes else None] * job.images,
        "label_names": LABELS if classes else [],
        "top5": [top5] * job.images if classes else [],
        "left_out": {} if classes else dict.fromkeys(CAM_CLASS_ARRAYS, NO_CAM_CLASSES),
        "grid": list(job.model.grid),
        "layers": list(range(job.model.layers)),
        "components": 1,
        "sign_rule": job.params["sign_rule"],
        "relu": job.params["relu"],
        **(_eigencam_trust(job) if job.params.get("faithfulness", True) else {}),
    }


def _scanpath(job: FakeJob) -> dict[str, Any]:
    scenes = 1 if job.single else job.images
    return {"scenes": scenes, "target": [3] * scenes, "grid": list(job.model.grid)}


SUMMARIES: dict[str, Callable[[FakeJob], dict[str, Any]]] = {
    "head-importance": _head_importance,
    "attention-profile": _attention_profile,
    "attention-patterns": _attention_patterns,
    "eigencam": _eigencam,
    "scanpath": _scanpath,
    "head-detail": _head_detail,
    "head-pruning": _head_pruning,
}
"""Plausible values of a kind's summary fields; the others get `placeholder` values."""


def placeholder(annotation: Any) -> Any:
    """A simple value of a field's type: 0, 0.0, False, "", empty containers, None where allowed."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        return None if type(None) in args else placeholder(args[0])
    if origin is Literal:
        return args[0]
    if origin is tuple and args and args[-1] is not Ellipsis:
        return [placeholder(arg) for arg in args]
    if origin in (list, tuple, set):
        return []
    if origin is dict:
        return {}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return required_placeholders(annotation)
    return {bool: False, int: 0, float: 0.0, str: ""}.get(annotation)


def required_placeholders(model: type[BaseModel]) -> dict[str, Any]:
    """A placeholder for each required field of `model`."""
    return {name: placeholder(f.annotation) for name, f in model.model_fields.items() if f.is_required()}


def summary_for(record: dict[str, Any], m: FakeModel) -> dict[str, Any]:
    """A summary the job's kind accepts: its fields (tuned, else placeholders) and the `model` block."""
    job = FakeJob(record, m)
    tuned = SUMMARIES.get(job.kind.name, lambda _job: {})(job)
    values = {**required_placeholders(job.kind.summary), **tuned, "model": job.model_block()}
    return job.kind.summary.model_validate(values).model_dump(mode="json")


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(
        make_app(FakeModel(running_polls=3)),
        host="127.0.0.1",
        port=int(sys.argv[1]) if len(sys.argv) > 1 else 8000,
    )
