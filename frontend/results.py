"""Reading a job's results for the views: named arrays, the summary, and the pictures analysed.

Pages ask for what they draw, by name; the client caches what it fetched. This module is the
only place that knows how a job's images are found (uploaded ids, or arrays the analysis returns).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import ValidationError

from frontend.api import ApiClient, ApiError, JobRecord
from vitscope.contracts import kinds
from vitscope.contracts.kinds import ArraySpec, ModelBlock

MAX_SIDE = 512  # pictures are only backgrounds: no need to ship more pixels than the figure shows


@dataclass
class Results:
    """The results of one finished job: `array(name)`, `optional(name)`, `summary`."""

    api: ApiClient
    job_id: str
    record: JobRecord = field(default_factory=dict)

    @classmethod
    def of(cls, api: ApiClient, job_id: str) -> Results:
        """Results of `job_id` (its record is fetched once: a finished job's record is cached)."""
        return cls(api, job_id, api.job(job_id))

    @property
    def names(self) -> list[str]:
        """Names of the arrays the job produced."""
        return list(self.record.get("results") or [])

    def array(self, name: str) -> np.ndarray:
        """The named array; ApiError if the job has no such result."""
        return self.api.result(self.job_id, name)

    def array_at(self, name: str, *index: int) -> np.ndarray:
        """The slice array[index] of the named array, cut by the API (only what a view draws travels)."""
        return self.api.result(self.job_id, name, index)

    def optional(self, name: str) -> np.ndarray | None:
        """The named array, or None when this job did not produce it."""
        if self.names and name not in self.names:
            return None
        try:
            return self.array(name)
        except ApiError as exc:
            if exc.not_found:
                return None
            raise

    @property
    def summary(self) -> dict[str, Any]:
        """The job's JSON summary (empty when it has none)."""
        try:
            return self.api.summary(self.job_id)
        except ApiError as exc:
            if exc.not_found:
                return {}
            raise

    @property
    def model(self) -> ModelBlock | None:
        """The summary's `model` block (layers, heads, grid, labels ...); None for results stored before it."""
        block = self.summary.get("model")
        try:
            return ModelBlock.model_validate(block) if block else None
        except ValidationError:
            return None

    @property
    def kind(self) -> kinds.Kind | None:
        """The declaration of the job's kind (None for a kind this dashboard does not know)."""
        return kinds.all_kinds().get(str(self.record.get("kind")))

    def spec(self, name: str) -> ArraySpec | None:
        """The declared schema of result `name` (None when the kind or the name is not declared)."""
        return self.kind.results.get(name) if self.kind else None

    def item(self, name: str, index: int) -> np.ndarray | None:
        """Input `index`'s slice of result `name` (clamped to the inputs there are) when its leading
        dim is declared `N` or `N?` and present; else the whole array; None when not produced."""
        array = self.optional(name)
        if array is None or not self._per_input(name, array):
            return array
        return array[min(index, len(array) - 1)]

    def count(self, name: str) -> int:
        """How many inputs result `name` covers: the size of its leading `N`/`N?` dim, 1 when absent."""
        array = self.array(name)
        return len(array) if self._per_input(name, array) else 1

    def _per_input(self, name: str, array: np.ndarray) -> bool:
        """True when `array` has the leading per-input dim its declaration names (`N?` may be dropped)."""
        spec = self.spec(name)
        if spec is None or not spec.dims or str(spec.dims[0]).rstrip("?") != "N":
            return False
        return array.ndim == len(spec.dims)

    @property
    def params(self) -> dict[str, Any]:
        """The job's normalized parameters."""
        return dict(self.record.get("params") or {})

    @property
    def inputs(self) -> dict[str, Any]:
        """The job's inputs ({dataset} | {images, labels} | {zip})."""
        return dict(self.record.get("inputs") or {})


def decode_image(content: bytes, max_side: int = MAX_SIDE) -> np.ndarray:
    """Decode image bytes to (H, W, 3) uint8, upright (EXIF orientation applied, as the analyses
    read it, so crop boxes and object boxes land where they belong), shrunk so the longer side is
    at most `max_side`."""
    try:
        with Image.open(io.BytesIO(content)) as opened:
            rgb = ImageOps.exif_transpose(opened).convert("RGB")
        rgb.thumbnail((max_side, max_side))
        return np.asarray(rgb)
    except (UnidentifiedImageError, OSError) as exc:
        raise ApiError("The stored image could not be decoded.") from exc


def uploaded_image(api: ApiClient, inputs: dict[str, Any], index: int) -> np.ndarray | None:
    """Pixels of the `index`-th uploaded image of a job's inputs, or None for built-in datasets."""
    images = inputs.get("images") or []
    if not 0 <= index < len(images):
        return None
    return decode_image(api.image_bytes(str(images[index])))


def class_name(summary: dict[str, Any], index: int) -> str:
    """The name of class `index`: from the summary's `model` block (a classifier's), else its linear
    probe's classes, else (older results) its `label_names`; `class i` when none names it."""
    probe = summary.get("probe") or {}
    probe_classes = probe.get("classes") if isinstance(probe.get("classes"), list) else None
    names = (summary.get("model") or {}).get("labels") or probe_classes or summary.get("label_names") or []
    return str(names[index]) if 0 <= index < len(names) else f"class {index}"


def top5_of(
    summary: dict[str, Any], image: int, idx: np.ndarray | None, prob: np.ndarray | None
) -> tuple[list[str], list[float]]:
    """Top-5 class names and probabilities of one image: the summary's `top5` ({index, label, prob}
    per class, as eigencam declares it) when it has the image, else the `idx` and `prob` arrays (5,)."""
    per_image = summary.get("top5")
    if isinstance(per_image, list) and 0 <= image < len(per_image) and per_image[image]:
        items = per_image[image]
        names = [str(item.get("label") or class_name(summary, int(item["index"]))) for item in items]
        return names, [float(item["prob"]) for item in items]
    if idx is None or prob is None:
        return [], []
    return [class_name(summary, int(i)) for i in idx], [float(p) for p in prob]
