"""What a kind of analysis declares, once: its params, result schema, summary, page and entry point.

A kind module (`vitscope/contracts/kinds/<kind>.py`, or any module named in
`VITSCOPE_EXTRA_KINDS` or the `vitscope.kinds` entry-point group) defines `KIND = Kind(...)`.
Every tier reads that declaration: the API's typed request and response models, the worker
(which checks each result against `results` before storing it), the CLI, the dashboard's
launch list and pages, the test fake, and `vitscope kinds`. Torch-free: numpy and pydantic only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vitscope.contracts import datasets
from vitscope.contracts.errors import UserError

MAX_SEED = datasets.MAX_SEED
"""The largest seed any parameter or dataset spec takes: the worker offsets seeds by < 2^32 and
torch's generators take at most 2^64 - 1, so every seed fits with room to spare."""

MAX_LAYERS = 256
"""The most transformer blocks a layer-indexed parameter may name (ViT-Huge has 32)."""

DType = Literal["float", "float16", "int", "uint8", "int8", "bool"]
"""A result's element type: `float` and `int` admit any width (float32/64, int32/64)."""


class Params(BaseModel):
    """Parameters of one analysis kind. Unknown fields are refused with their name."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageParams(Params):
    """Parameters of a kind that analyses images: the input size may be chosen."""

    image_size: int | None = Field(
        default=None,
        ge=8,
        le=1024,
        description="square input size in pixels, a multiple of the patch size (position embeddings are "
        "interpolated); default: the model's image processor (its resize and crop)",
    )


class ModelBlock(BaseModel):
    """The model a result was computed with, the same block in every kind's summary."""

    model_config = ConfigDict(extra="forbid")

    spec: str = Field(description="the model spec the job named")
    layers: int = Field(description="transformer blocks")
    heads: int = Field(description="attention heads per block")
    grid: tuple[int, int] = Field(description="patch grid (rows, cols) at the analysed input size")
    patch_size: int
    image_size: tuple[int, int] = Field(description="analysed input size (height, width) in pixels")
    prefix_tokens: list[str] = Field(description="roles of the tokens before the patches (cls, dist, reg)")
    labels: list[str] = Field(description="class names of the classifier; empty without one")
    classifier: bool = Field(description="whether the checkpoint has a classification head")


class Summary(BaseModel):
    """Base of a kind's JSON summary: its own fields plus the common `model` block."""

    model_config = ConfigDict(extra="forbid")

    model: ModelBlock | None = Field(default=None, description="the model (added by the runner)")


@dataclass(frozen=True)
class ArraySpec:
    """One named result array: symbolic dims, element type, whether it may be absent.

    `dims` names each axis (`"L"`, `"H"`, `"N"` ...) or fixes its size (an int); one symbol has
    one size across a whole result. A first dim written `"N?"` may be absent: a result for a
    single input squeezes it.
    """

    dims: tuple[str | int, ...]
    dtype: DType
    description: str = ""
    optional: bool = False

    def shape_text(self) -> str:
        """The dims as `(N, L, H)`."""
        return "(" + ", ".join(str(d) for d in self.dims) + ")"


@dataclass(frozen=True)
class Kind:
    """One kind of analysis, declared once.

    `run` and `open_source` are `module:function` paths, imported only by the process that
    runs the analysis (the API and the dashboard never import them). `open_source` is None
    for kinds that iterate over images; a kind with other inputs (scanpath: search scenes)
    names its own. `page` and `url_key` say where the dashboard shows a job: `/heads?hi=<id>`.
    An `interactive` kind is light work a page submits per selection (one image, about one forward):
    the launch form does not offer it, and its jobs go to their own queue, so a click is never
    stuck behind a dataset-wide job.
    """

    name: str
    title: str
    help: str
    params: type[Params]
    summary: type[Summary]
    results: Mapping[str, ArraySpec]
    run: str
    page: str
    url_key: str
    open_source: str | None = None
    order: int = 100
    default_launch: bool = True
    interactive: bool = False
    example_inputs: Mapping[str, Any] = field(default_factory=lambda: {"dataset": "synthscenes:64:seed=0"})

    def dashboard_path(self, job_id: str) -> str:
        """The dashboard URL path (with query) that shows a job of this kind."""
        return f"{self.page}?{self.url_key}={job_id}"


class ResultSchemaError(UserError):
    """A result that breaks its kind's declared schema; the message names the array."""


def check_result(kind: Kind, arrays: Mapping[str, np.ndarray], summary: Mapping[str, Any]) -> None:
    """Raise `ResultSchemaError` naming the first array or summary field that breaks `kind`'s schema."""
    unknown = sorted(set(arrays) - set(kind.results))
    if unknown:
        raise ResultSchemaError(f"{kind.name} result: array {unknown[0]!r} is not declared in its schema")
    sizes: dict[str, int] = {}
    for name, spec in kind.results.items():
        if name not in arrays:
            if not spec.optional:
                raise ResultSchemaError(f"{kind.name} result: required array {name!r} is missing")
            continue
        _check_array(kind.name, name, spec, np.asarray(arrays[name]), sizes)
    try:
        kind.summary.model_validate(dict(summary))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ResultSchemaError(f"{kind.name} summary: {where}: {first['msg']}") from exc


def _check_array(kind: str, name: str, spec: ArraySpec, array: np.ndarray, sizes: dict[str, int]) -> None:
    dims = list(spec.dims)
    if dims and isinstance(dims[0], str) and dims[0].endswith("?") and array.ndim == len(dims) - 1:
        dims = dims[1:]
    if array.ndim != len(dims):
        raise ResultSchemaError(
            f"{kind} result: array {name!r} has shape {array.shape}, declared {spec.shape_text()}"
        )
    for axis, (dim, size) in enumerate(zip(dims, array.shape, strict=True)):
        symbol = dim.rstrip("?") if isinstance(dim, str) else dim
        expected = symbol if isinstance(symbol, int) else sizes.setdefault(symbol, size)
        if size != expected:
            raise ResultSchemaError(
                f"{kind} result: array {name!r} axis {axis} ({dim}) has size {size}, "
                f"but {dim} is {expected} elsewhere in the result"
            )
    if not _dtype_ok(spec.dtype, array.dtype):
        raise ResultSchemaError(
            f"{kind} result: array {name!r} has dtype {array.dtype}, declared {spec.dtype}"
        )


def _dtype_ok(declared: DType, actual: np.dtype[Any]) -> bool:
    if declared == "float":
        return bool(np.issubdtype(actual, np.floating))
    if declared == "int":
        return bool(np.issubdtype(actual, np.integer))
    return actual == np.dtype(declared)
