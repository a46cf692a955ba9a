"""Reading a job's results for the views: named arrays, the summary, and the pictures analysed.

Pages ask for what they draw, by name; the client caches what it fetched. This module is the
only place that knows how a job's images are found (uploaded ids, or arrays the analysis returns).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from frontend.api import ApiClient, ApiError, JobRecord

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
    def params(self) -> dict[str, Any]:
        """The job's normalized parameters."""
        return dict(self.record.get("params") or {})

    @property
    def inputs(self) -> dict[str, Any]:
        """The job's inputs ({dataset} | {images, labels} | {zip})."""
        return dict(self.record.get("inputs") or {})


def decode_image(content: bytes, max_side: int = MAX_SIDE) -> np.ndarray:
    """Decode image bytes to (H, W, 3) uint8, shrunk so the longer side is at most `max_side`."""
    try:
        with Image.open(io.BytesIO(content)) as opened:
            rgb = opened.convert("RGB")
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
    """The name of class `index` from a summary's `label_names` (or `labels`), else `class i`."""
    names = summary.get("label_names") or summary.get("class_names") or []
    if isinstance(names, dict):
        return str(names.get(str(index), f"class {index}"))
    if isinstance(names, list) and 0 <= index < len(names):
        return str(names[index])
    return f"class {index}"


def top5_of(
    summary: dict[str, Any], image: int, idx: np.ndarray | None, prob: np.ndarray | None
) -> tuple[list[str], list[float]]:
    """Top-5 names and probabilities of one image, from the summary's `top5` when it has them
    (a list per image of {name, prob} objects or [name, prob] pairs), else from index arrays."""
    per_image = summary.get("top5")
    if isinstance(per_image, list) and 0 <= image < len(per_image) and isinstance(per_image[image], list):
        names, probs = [], []
        for item in per_image[image]:
            if isinstance(item, dict):
                label = item.get("label") or item.get("name")
                index = int(item.get("index", -1))
                names.append(str(label) if label else class_name(summary, index))
                probs.append(float(item.get("prob") or item.get("probability") or 0.0))
            elif isinstance(item, list | tuple) and len(item) >= 2:
                names.append(str(item[0]))
                probs.append(float(item[1]))
        if names:
            return names, probs
    if idx is None or prob is None:
        return [], []
    return [class_name(summary, int(i)) for i in idx], [float(p) for p in prob]
