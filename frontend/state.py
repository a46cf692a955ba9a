"""The URL is the state: parse a page's query string into a typed state and write it back.

Every dashboard view is fully described by its path and query (see docs/CONTRACTS.md,
"Dashboard URLs"), so a copied link restores the same jobs and the same selection. Parsing
is forgiving: a malformed value falls back to its default and is reported in `problems`
instead of breaking the page. Two keys are shared by every page so a link can rebuild
jobs the server has forgotten: `model` (a model spec) and `data` (a dataset spec,
`images:<id>,<id>` or `zip:<id>`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar, cast
from urllib.parse import parse_qsl, urlencode

from vitscope.contracts import kinds

JOB_ID = re.compile(r"^[0-9a-f]{8,64}$")
IMAGE_ID = re.compile(r"^[0-9a-f]{64}$")
METRICS: dict[str, str] = {
    "accuracy_drop": "Accuracy drop",
    "prob_drop": "Probability drop",
    "loss_change": "Loss change",
    "taylor": "Gradient estimate (Taylor)",
    "cls_cosine_drop": "CLS embedding change (1 − cos)",
    "patch_change": "Patch feature change",
    "embedding_taylor": "CLS change estimate (task-free Taylor)",
    "layer_impact": "Layer impact",
}
"""The (L, H) head-importance metrics the overview can show, class-based first; a job offers those it has."""
PICTURES: dict[str, str] = {"original": "original picture", "crop": "analysed crop"}
"""What /cam draws its maps on: the picture the user uploaded (maps in its crop box) or the analysed crop."""
QUERY_TYPES = ("patch", "cls")
COLORMAPS: dict[str, str] = {
    "jet": "Jet",
    "viridis": "Viridis",
    "inferno": "Inferno",
    "turbo": "Turbo",
    "hot": "Hot",
    "greys": "Greys",
}
MAX_LINK_IMAGES = 32  # more uploaded ids than this would make links unwieldy; they are left out

Query = Mapping[str, Any]
S = TypeVar("S", bound="PageState")


class _Reader:
    """Reads typed values out of a raw query, noting each value it had to replace."""

    def __init__(self, query: Query) -> None:
        self.query = {key: _scalar(value) for key, value in query.items()}
        self.problems: list[str] = []

    def text(self, key: str) -> str | None:
        value = self.query.get(key)
        return value.strip() or None if isinstance(value, str) else None

    def job(self, key: str) -> str | None:
        value = self.text(key)
        if value is None:
            return None
        if not JOB_ID.match(value.lower()):
            self.problems.append(f"'{key}={value}' is not a job id (hex digits); ignored")
            return None
        return value.lower()

    def integer(
        self, key: str, default: int | None, low: int | None = 0, high: int | None = None
    ) -> int | None:
        value = self.text(key)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            self.problems.append(f"'{key}={value}' is not a whole number; using {default}")
            return default
        if (low is not None and number < low) or (high is not None and number > high):
            self.problems.append(f"'{key}={value}' is out of range; using {default}")
            return default
        return number

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self.text(key)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            self.problems.append(f"'{key}={value}' is not a number; using {default}")
            return default
        return min(max(number, low), high)

    def choice(self, key: str, choices: tuple[str, ...] | Mapping[str, str], default: str) -> str:
        value = self.text(key)
        if value is None:
            return default
        if value not in choices:
            self.problems.append(f"'{key}={value}' is not one of {', '.join(choices)}; using {default}")
            return default
        return value

    def data(self) -> str | None:
        value = self.text("data")
        if value is not None and data_to_inputs(value) is None:
            self.problems.append(f"'data={value}' is not a dataset spec, images:<ids> or zip:<id>; ignored")
            return None
        return value


def _scalar(value: Any) -> Any:
    # Dash hands repeated keys over as lists; the last one wins, like most web frameworks
    if isinstance(value, list | tuple):
        return value[-1] if value else None
    return value


@dataclass(frozen=True)
class PageState:
    """Base of the page states: serialization to and from query strings and JSON stores."""

    path: ClassVar[str] = "/"
    jobs: ClassVar[dict[str, str]] = {}
    """URL key of each job this page shows -> the job kind (used to rebuild a forgotten job)."""

    model: str | None = None
    data: str | None = None
    problems: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_query(cls: type[S], query: Query) -> S:
        """Parse a query mapping (as Dash's `layout(**query)` gets it); never raises."""
        reader = _Reader(query)
        values = cls._read(reader)
        return cls(model=reader.text("model"), data=reader.data(), problems=tuple(reader.problems), **values)

    @classmethod
    def from_search(cls: type[S], search: str | None) -> S:
        """Parse a `?a=1&b=2` search string."""
        return cls.from_query(dict(parse_qsl((search or "").lstrip("?"))))

    @classmethod
    def _read(cls, reader: _Reader) -> dict[str, Any]:
        return {}

    @classmethod
    def from_store(cls: type[S], data: Mapping[str, Any] | None) -> S:
        """Rebuild a state kept in a dcc.Store (see `to_store`)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"problems"}
        return cls(**{key: value for key, value in (data or {}).items() if key in names})

    def to_store(self) -> dict[str, Any]:
        """A JSON-able dict for a dcc.Store."""
        values = dataclasses.asdict(self)
        values.pop("problems")
        return values

    def to_query(self) -> dict[str, str]:
        """The query keys of this state in a stable order (page keys first, then model and data)."""
        values = self.to_store()
        order = [name for name in values if name not in ("model", "data")] + ["model", "data"]
        return {name: _text(values[name]) for name in order if values[name] is not None}

    def search(self) -> str:
        """The `?…` part of this state's URL."""
        query = self.to_query()
        return "?" + urlencode(query, safe=":,=") if query else ""

    def url(self) -> str:
        """Path and query of this state's view."""
        return self.path + self.search()

    def replace(self: S, **changes: Any) -> S:
        """A copy with `changes` applied (and no parse problems carried over)."""
        return dataclasses.replace(self, problems=(), **changes)

    def job_ids(self) -> dict[str, str]:
        """URL key -> job id, for the jobs this state names."""
        return {key: getattr(self, key) for key in self.jobs if getattr(self, key)}

    def kind_of(self, key: str) -> str | None:
        """The kind of the job under URL key `key` (None when the page does not know it)."""
        return self.jobs.get(key) or None


def kinds_shown_on(path: str, *keys: str) -> dict[str, str]:
    """URL key -> kind name of the declared kinds whose `page` is `path`, for the keys the page has.

    A kind naming a key the page lacks, or one another kind already took, is not shown there
    (it gets the generic `/job` page instead, see `view_of`).
    """
    shown: dict[str, str] = {}
    for kind in kinds.all_kinds().values():
        if kind.page == path and kind.url_key in keys:
            shown.setdefault(kind.url_key, kind.name)
    return shown


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass(frozen=True)
class HomeState(PageState):
    """`/`: the model and dataset the launch form starts with."""

    path: ClassVar[str] = "/"


@dataclass(frozen=True)
class HeadsState(PageState):
    """`/heads`: the three overview jobs and the linked selection (views B, C and D)."""

    path: ClassVar[str] = "/heads"
    jobs: ClassVar[dict[str, str]] = kinds_shown_on("/heads", "hi", "ap", "pat")

    hi: str | None = None
    ap: str | None = None
    pat: str | None = None
    layer: int = 0
    head: int = 0
    metric: str = "accuracy_drop"
    image: int = 0
    q: str = "patch"

    @classmethod
    def _read(cls, reader: _Reader) -> dict[str, Any]:
        return {
            "hi": reader.job("hi"),
            "ap": reader.job("ap"),
            "pat": reader.job("pat"),
            "layer": reader.integer("layer", 0),
            "head": reader.integer("head", 0),
            "metric": reader.choice("metric", METRICS, "accuracy_drop"),
            "image": reader.integer("image", 0),
            "q": reader.choice("q", QUERY_TYPES, "patch"),
        }


@dataclass(frozen=True)
class HeadState(PageState):
    """`/head`: one head in detail; `query` is a patch index (row-major), -1 the CLS token.

    `hd` and `hp` are the light per-selection jobs (the image's attention, the head's partial pruning):
    the page derives them from the model, data, image, layer and head, so a link naming those always
    shows the same view; `hi`, `ap` and `pat` are the overview's jobs it links back to.
    """

    path: ClassVar[str] = "/head"
    jobs: ClassVar[dict[str, str]] = {**HeadsState.jobs, **kinds_shown_on("/head", "hd", "hp")}

    hi: str | None = None
    ap: str | None = None
    pat: str | None = None
    hd: str | None = None
    hp: str | None = None
    layer: int = 0
    head: int = 0
    image: int = 0
    query: int = -1
    mode: int = 0

    @classmethod
    def _read(cls, reader: _Reader) -> dict[str, Any]:
        return {
            "hi": reader.job("hi"),
            "ap": reader.job("ap"),
            "pat": reader.job("pat"),
            "hd": reader.job("hd"),
            "hp": reader.job("hp"),
            "layer": reader.integer("layer", 0),
            "head": reader.integer("head", 0),
            "image": reader.integer("image", 0),
            "query": reader.integer("query", -1, low=-1),
            "mode": reader.integer("mode", 0),
        }


@dataclass(frozen=True)
class CamState(PageState):
    """`/cam`: an eigencam job, the image in it, the layer (None = last), the overlay look, and
    what the maps are drawn on (`picture`: None = the uploaded original where the job has one, the
    default, left out of links; `crop` = the analysed crop)."""

    path: ClassVar[str] = "/cam"
    jobs: ClassVar[dict[str, str]] = kinds_shown_on("/cam", "job")

    job: str | None = None
    image: int = 0
    layer: int | None = None
    opacity: float = 0.5
    cmap: str = "jet"
    picture: str | None = None

    @classmethod
    def _read(cls, reader: _Reader) -> dict[str, Any]:
        picture = reader.choice("picture", PICTURES, "original")
        return {
            "job": reader.job("job"),
            "image": reader.integer("image", 0),
            "layer": reader.integer("layer", None),
            "opacity": reader.number("opacity", 0.5, 0.0, 1.0),
            "cmap": reader.choice("cmap", COLORMAPS, "jet"),
            "picture": None if picture == "original" else picture,
        }


@dataclass(frozen=True)
class ScanpathState(PageState):
    """`/scanpath`: a scanpath job, the scene in it and the target object (None = the job's)."""

    path: ClassVar[str] = "/scanpath"
    jobs: ClassVar[dict[str, str]] = kinds_shown_on("/scanpath", "job")

    job: str | None = None
    image: int = 0
    target: int | None = None

    @classmethod
    def _read(cls, reader: _Reader) -> dict[str, Any]:
        return {
            "job": reader.job("job"),
            "image": reader.integer("image", 0),
            "target": reader.integer("target", None),
        }


@dataclass(frozen=True)
class JobState(PageState):
    """`/job`: any one job, shown generically; `kind` lets a link recompute a forgotten job."""

    path: ClassVar[str] = "/job"
    jobs: ClassVar[dict[str, str]] = {"job": ""}

    job: str | None = None
    kind: str | None = None

    @classmethod
    def _read(cls, reader: _Reader) -> dict[str, Any]:
        return {"job": reader.job("job"), "kind": reader.text("kind")}

    def kind_of(self, key: str) -> str | None:
        """The kind the link names (one page shows every kind)."""
        return self.kind if key == "job" else None


VIEW_STATES: tuple[type[PageState], ...] = (HeadsState, HeadState, CamState, ScanpathState)
"""The states of the pages made for particular kinds."""


def view_of(kind: str, job_id: str, model: str | None = None, data: str | None = None) -> PageState:
    """The state of the view that shows a job of `kind`: its declared page when the dashboard has
    that page and knows the kind's URL key there, else the generic `/job` page."""
    declared = kinds.all_kinds().get(kind)
    for state_cls in VIEW_STATES:
        if declared and state_cls.path == declared.page and state_cls.jobs.get(declared.url_key) == kind:
            return state_cls(model=model, data=data).replace(**{declared.url_key: job_id})
    return JobState(job=job_id, kind=kind, model=model, data=data)


# -- job inputs in links -----------------------------------------------------------------------

DataKind = Literal["dataset", "images", "zip"]


def data_to_inputs(data: str) -> dict[str, Any] | None:
    """The job `inputs` a link's `data` value stands for, or None when it is not one."""
    data = data.strip()
    if data.startswith("images:"):
        ids = [part for part in data.removeprefix("images:").split(",") if part]
        return {"images": ids} if ids and all(IMAGE_ID.match(i) for i in ids) else None
    if data.startswith("zip:"):
        zip_id = data.removeprefix("zip:")
        return {"zip": zip_id} if IMAGE_ID.match(zip_id) else None
    if re.match(r"^(synthscenes|synthsearch):\d+(:[\w=:]+)?$", data):
        return {"dataset": data}
    return None


def inputs_to_data(inputs: Mapping[str, Any] | None) -> str | None:
    """The `data` value for a job's `inputs`, or None when a link cannot carry them."""
    if not inputs:
        return None
    if inputs.get("dataset"):
        return str(inputs["dataset"])
    if inputs.get("zip"):
        return f"zip:{inputs['zip']}"
    images = inputs.get("images") or []
    if images and len(images) <= MAX_LINK_IMAGES:
        return "images:" + ",".join(images)
    return None


def with_source(state: S, record: Mapping[str, Any] | None) -> S:
    """`state` with `model` and `data` filled from a job record when it lacks them."""
    if not record:
        return state
    model = state.model or record.get("model")
    data = state.data or inputs_to_data(cast(Mapping[str, Any], record.get("inputs")))
    if (model, data) == (state.model, state.data):
        return state
    return dataclasses.replace(state, model=model, data=data)


def patch_of(query: int, grid: tuple[int, int]) -> tuple[int, int] | None:
    """(row, column) of patch index `query` on a (h, w) grid; None for the CLS query (-1)."""
    h, w = grid
    if query < 0 or query >= h * w:
        return None
    return divmod(query, w)


def apply_box_edits(boxes: list[list[float]], relayout: Mapping[str, Any] | None) -> list[list[float]]:
    """Boxes (x0, y0, x1, y1) after a Plotly `relayoutData` of editable rectangle shapes.

    Plotly reports a drag as `shapes[i].x0` … keys, a full redraw as `shapes`; shape i is box i.
    Coordinates are put back in order (x0 < x1, y0 < y1) since a user may drag past the corner.
    """
    out = [list(map(float, box)) for box in boxes]
    if not relayout:
        return out
    if isinstance(relayout.get("shapes"), list):
        for i, shape in enumerate(relayout["shapes"][: len(out)]):
            out[i] = [float(shape[k]) for k in ("x0", "y0", "x1", "y1")]
    for key, value in relayout.items():
        match = re.match(r"^shapes\[(\d+)\]\.(x0|y0|x1|y1)$", key)
        if match and int(match.group(1)) < len(out):
            out[int(match.group(1))][("x0", "y0", "x1", "y1").index(match.group(2))] = float(value)
    return [[min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])] for b in out]


def head_from_click(click: Mapping[str, Any] | None) -> tuple[int, int] | None:
    """(layer, head) of a click on any head view: points carry `customdata` [layer, head],
    except the importance heatmap whose cell is (y = layer, x = head)."""
    points = (click or {}).get("points") or []
    if not points:
        return None
    point = points[0]
    custom = point.get("customdata")
    if isinstance(custom, list | tuple) and len(custom) >= 2:
        return int(custom[0]), int(custom[1])
    if "z" in point and point.get("x") is not None and point.get("y") is not None:
        return int(point["y"]), int(point["x"])
    return None


def patch_from_click(click: Mapping[str, Any] | None, grid: tuple[int, int]) -> int | None:
    """Patch index (row-major) of a click on a patch-coordinate overlay, None if off the grid."""
    points = (click or {}).get("points") or []
    if not points or points[0].get("x") is None or points[0].get("y") is None:
        return None
    row, col = round(float(points[0]["y"])), round(float(points[0]["x"]))
    h, w = grid
    return row * w + col if 0 <= row < h and 0 <= col < w else None
