"""The job contract shared by the API, the worker, the CLI and the dashboard. Torch-free.

A job is `{kind, model, inputs, params}`. `normalize_job` validates it (unknown kinds,
models and parameters are refused with a message naming them), fills every default, and
`job_id` hashes the normalized spec: the same request always gets the same id, so a repeat
is a cache hit and a link names its analysis for good.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from functools import cache
from typing import Annotated, Any, Literal, Union, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from vitscope.contracts import kinds
from vitscope.contracts.datasets import parse_dataset_spec
from vitscope.contracts.errors import UserError
from vitscope.contracts.specs import MAX_SPEC_CHARS, parse_model_spec

IMAGE_ID = r"^[0-9a-f]{64}$"
ImageId = Annotated[str, Field(pattern=IMAGE_ID, description="content hash of an uploaded image")]
MAX_INPUT_IMAGES = 10_000
"""The most uploaded images one job may name (more: upload a zip)."""
MAX_LABEL = 2**31 - 1
Label = Annotated[int, Field(ge=0, le=MAX_LABEL, description="class index")]


class Inputs(BaseModel):
    """What an analysis runs on: exactly one of a built-in dataset, uploaded images, or an uploaded zip.

    `dataset`: `synthscenes:N[:seed=S]` (or `synthsearch:N[:seed=S][:layout=...]` for scanpaths).
    `images`: uploaded image ids, with optional `labels` (class indices, one per image).
    `zip`: the id of an uploaded ImageFolder zip (one folder per class).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str | None = Field(default=None, max_length=200)
    images: tuple[ImageId, ...] | None = Field(default=None, max_length=MAX_INPUT_IMAGES)
    labels: tuple[Label, ...] | None = Field(default=None, max_length=MAX_INPUT_IMAGES)
    zip: Annotated[str, Field(pattern=IMAGE_ID)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Inputs:
        given = [name for name in ("dataset", "images", "zip") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of 'dataset', 'images' or 'zip' (got {given or 'none'})")
        if self.labels is not None and (self.images is None or len(self.labels) != len(self.images)):
            raise ValueError("'labels' needs 'images' and one label per image")
        if self.images is not None and not self.images:
            raise ValueError("'images' is empty: upload images first (POST /api/v1/images)")
        return self

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(parse_dataset_spec(value))
        except UserError as exc:
            raise ValueError(str(exc)) from exc


def _model_spec(value: str) -> str:
    try:
        return parse_model_spec(value, check_folder=False).name
    except UserError as exc:
        raise ValueError(str(exc)) from exc


ModelName = Annotated[
    str,
    AfterValidator(_model_spec),
    Field(
        max_length=MAX_SPEC_CHARS,
        description="demo, random:<family>-<size>, a hub id or a folder",
        examples=["demo"],
    ),
]
"""A model spec, normalized (`vitscope.contracts.specs`)."""


class JobSpec(BaseModel):
    """A normalized job: every default filled, the model spec normalized."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    model: ModelName
    inputs: Inputs
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        try:
            return kinds.get(value).name
        except UserError as exc:
            raise ValueError(str(exc)) from exc

    def canonical(self) -> str:
        """The canonical JSON text the id is a hash of."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @property
    def id(self) -> str:
        """Content hash of the normalized spec (24 hex digits)."""
        return hashlib.sha256(self.canonical().encode()).hexdigest()[:24]

    def keyed_id(self, key: bytes) -> str:
        """Keyed hash (HMAC-SHA256) of the canonical spec, 24 hex digits: the same request gets the
        same id, and nobody without `key` can compute the id of a request."""
        return hmac.new(key, self.canonical().encode(), hashlib.sha256).hexdigest()[:24]

    def typed_params(self) -> BaseModel:
        """The params as their kind's pydantic model."""
        return kinds.get(self.kind).params.model_validate(self.params)


def normalize_job(raw: dict[str, Any]) -> JobSpec:
    """Validate a raw job request and fill defaults; raise `JobSpecError` naming each problem."""
    if not isinstance(raw, dict):
        raise JobSpecError([{"loc": [], "msg": "a job is a JSON object {kind, model, inputs, params}"}])
    try:
        kind = kinds.get(raw.get("kind"))
    except UserError as exc:
        raise JobSpecError([{"loc": ["kind"], "msg": str(exc)}]) from exc
    try:
        params = kind.params.model_validate(raw.get("params") or {})
        return JobSpec.model_validate({**raw, "params": params.model_dump(mode="json")})
    except ValidationError as exc:
        raise JobSpecError(_readable(exc, raw)) from exc


class JobSpecError(UserError):
    """A job request that does not validate; `problems` lists {loc, msg} for each."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{'.'.join(map(str, p['loc'])) or 'job'}: {p['msg']}" for p in problems))


def _readable(exc: ValidationError, raw: dict[str, Any]) -> list[dict[str, Any]]:
    problems = []
    for err in exc.errors():
        loc = list(err["loc"])
        if err["type"] == "extra_forbidden":
            msg = f"unknown parameter {loc[-1]!r}"
        else:
            msg = err["msg"].removeprefix("Value error, ")
        if loc and loc[0] not in ("model", "inputs", "kind") and "params" not in loc:
            loc = ["params", *loc] if loc[0] not in raw else loc
        problems.append({"loc": loc, "msg": msg})
    return problems


JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]


class _JobRequest(BaseModel):
    """What every kind's request shares: the model and the inputs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelName
    inputs: Inputs


def request_model(kind: kinds.Kind) -> type[BaseModel]:
    """The typed request of one kind: `{kind: <name>, model, inputs, params: <its Params>}`."""
    name = kind.params.__name__.removesuffix("Params") + "Job"
    return create_model(
        name,
        __base__=_JobRequest,
        __doc__=f"A `{kind.name}` job: {kind.help}.",
        kind=(cast(Any, Literal)[kind.name], Field(description=kind.title)),
        params=(kind.params, Field(default_factory=kind.params)),
    )


@cache
def job_request_type() -> Any:
    """The request body of `POST /jobs`: a union of every kind's typed request, told apart by `kind`."""
    models = tuple(request_model(k) for k in kinds.all_kinds().values())
    return Annotated[Union[models], Field(discriminator="kind")]  # noqa: UP007 (a runtime tuple)


def job_examples() -> dict[str, dict[str, Any]]:
    """One valid request per kind (its declared example inputs, the demo model, default params),
    named by the kind: the OpenAPI document's examples of `POST /jobs`."""
    return {
        kind.name: {
            "summary": kind.title,
            "value": {"kind": kind.name, "model": "demo", "inputs": dict(kind.example_inputs), "params": {}},
        }
        for kind in kinds.all_kinds().values()
    }


def spec_from_request(request: BaseModel) -> JobSpec:
    """Return the normalized spec of an already validated typed request (nothing is validated twice)."""
    params = request.params.model_dump(mode="json")  # type: ignore[attr-defined]
    fields = {"kind": request.kind, "model": request.model, "inputs": request.inputs, "params": params}  # type: ignore[attr-defined]
    return JobSpec.model_construct(**fields)
