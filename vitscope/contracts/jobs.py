"""The job contract shared by the API, the worker, the CLI and the dashboard. Torch-free.

A job is `{kind, model, inputs, params}`. `normalize_job` validates it (unknown kinds,
models and parameters are refused with a message naming them), fills every default, and
`job_id` hashes the normalized spec: the same request always gets the same id, so a repeat
is a cache hit and a link names its analysis for good.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vitscope.contracts.datasets import parse_dataset_spec
from vitscope.contracts.errors import UserError
from vitscope.contracts.params import PARAMS, JobKind
from vitscope.contracts.specs import parse_model_spec

IMAGE_ID = r"^[0-9a-f]{64}$"
ImageId = Annotated[str, Field(pattern=IMAGE_ID, description="content hash of an uploaded image")]


class Inputs(BaseModel):
    """What an analysis runs on: exactly one of a built-in dataset, uploaded images, or an uploaded zip.

    `dataset`: `synthscenes:N[:seed=S]` (or `synthsearch:N[:seed=S][:layout=...]` for scanpaths).
    `images`: uploaded image ids, with optional `labels` (class indices, one per image).
    `zip`: the id of an uploaded ImageFolder zip (one folder per class).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str | None = None
    images: tuple[ImageId, ...] | None = None
    labels: tuple[int, ...] | None = None
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


class JobSpec(BaseModel):
    """A normalized job: every default filled, the model spec normalized."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: JobKind
    model: str
    inputs: Inputs
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        try:
            return parse_model_spec(value, check_folder=False).name
        except UserError as exc:
            raise ValueError(str(exc)) from exc

    def canonical(self) -> str:
        """The canonical JSON text the id is a hash of."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @property
    def id(self) -> str:
        """Content hash of the normalized spec (24 hex digits)."""
        return hashlib.sha256(self.canonical().encode()).hexdigest()[:24]

    def typed_params(self) -> BaseModel:
        """The params as their kind's pydantic model."""
        return PARAMS[self.kind].model_validate(self.params)


def normalize_job(raw: dict[str, Any]) -> JobSpec:
    """Validate a raw job request and fill defaults; raise `JobSpecError` naming each problem."""
    if not isinstance(raw, dict):
        raise JobSpecError([{"loc": [], "msg": "a job is a JSON object {kind, model, inputs, params}"}])
    kind = raw.get("kind")
    if kind not in PARAMS:
        raise JobSpecError([{"loc": ["kind"], "msg": f"unknown kind {kind!r}: one of {', '.join(PARAMS)}"}])
    try:
        params = PARAMS[kind].model_validate(raw.get("params") or {})
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


JobStatus = Literal["queued", "running", "done", "failed"]
