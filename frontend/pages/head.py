"""`/head`: one head in detail (the paper's D2–D5 and B2–B3), answering clicks from stored arrays.

Two light jobs serve the page, both derived from the model, data, image, layer and head in the
link (`derive`), never a dataset-wide job:
- `head-detail` (`hd`): one forward of the image with attention captured, every head of every
  layer (one layer for a model too large for that). A click on another head or layer, or on a query
  patch, is a slice of its arrays, fetched from the API as the slice the view draws.
- `head-pruning` (`hp`): the selected head pruned partially in six modes on the image, a batch of
  six passes. A backbone's modes show the cosine of its final CLS embedding to the unpruned one; its
  top-5 panel gives way to a note.
The API answers a request it has seen with the finished job, so revisiting a head reads stored
arrays; while a new job runs its graphs say so and the tracker polls quickly.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from dash import Input, Output, ctx, dcc, html

from frontend import figures as F
from frontend import ids
from frontend.api import ApiClient, ApiError, JobRecord, get_client
from frontend.components import field as labelled
from frontend.components import page_header
from frontend.objective import class_notes, objective_of
from frontend.page import Graphs, ViewPage, Views
from frontend.results import Results, class_name
from frontend.settings import get_settings
from frontend.state import HeadsState, HeadState, data_to_inputs, patch_from_click, patch_of, with_source
from vitscope.contracts.cost import known_geometry
from vitscope.contracts.errors import UserError
from vitscope.contracts.kinds import ModelBlock

GRAPHS: Graphs = (
    (ids.HEAD_OVERLAY, 5),
    (ids.HEAD_MATRIX, 7),
    (ids.HEAD_MODES, 5),
    (ids.HEAD_TOP5, 3),
    (ids.HEAD_VALUES, 4),
    (ids.HEAD_BIPARTITE, 12),
)


@dataclass
class Built(Views):
    """The page's figures, caption, image menu and model size (layers, heads)."""

    caption: list[Any] = field(default_factory=list)
    image_options: list[dict[str, Any]] = field(default_factory=list)
    dims: tuple[int, int] = (0, 0)


PAGE = ViewPage(
    __name__, HeadState, ids.HEAD, GRAPHS, Built, name="Head", title="Head detail · vitscope", order=2
)
build = PAGE.build


@PAGE.body
def body(state: HeadState, built: Built) -> list[Any]:
    """Title and head controls, the caption, the views."""
    layer, head = built.dims
    controls = [
        labelled(
            "Layer",
            dcc.Dropdown(
                id=ids.HEAD_LAYER, options=_numbers(layer, state.layer), value=state.layer, clearable=False
            ),
            class_name="w-90",
        ),
        labelled(
            "Head",
            dcc.Dropdown(
                id=ids.HEAD_HEAD, options=_numbers(head, state.head), value=state.head, clearable=False
            ),
            class_name="w-90",
        ),
        labelled(
            "Image",
            dcc.Dropdown(id=ids.HEAD_IMAGE, options=built.image_options, value=state.image, clearable=False),
            class_name="w-260",
        ),
        html.Button(
            "CLS query",
            id=ids.HEAD_CLS,
            className="button button-ghost",
            title="Show the CLS token's attention (click a patch for a patch query)",
        ),
        dcc.Link("← Heads overview", href=_overview_url(state), id=ids.HEAD_BACK_LINK, className="button"),
    ]
    return [
        page_header(
            "Head detail",
            "Click a patch (or a matrix row) to move the query; click a pruning "
            "mode to see its top-5 predictions.",
            controls,
        ),
        html.Div(built.caption, id=ids.HEAD_CAPTION, className="caption"),
        PAGE.grid(built),
    ]


def _numbers(n: int, current: int) -> list[dict[str, Any]]:
    """Menu options 0..n-1, always including the current value (a menu drops a value it lacks)."""
    return [{"label": str(i), "value": i} for i in range(max(n, current + 1, 1))]


def _overview_url(state: HeadState) -> str:
    return HeadsState(
        hi=state.hi,
        ap=state.ap,
        pat=state.pat,
        layer=state.layer,
        head=state.head,
        image=state.image,
        model=state.model,
        data=state.data,
    ).url()


@PAGE.prepare
def derive(api: ApiClient, state: HeadState) -> tuple[HeadState, str | None]:
    """Point `hd` and `hp` at the light jobs of this image, layer and head, submitting them: the API
    answers a request it has seen with that job, so a revisit costs two small requests and no work.

    Model, data and input size come from the link, else from the overview's jobs; without a model
    and data there is nothing to compute (the page says which jobs are missing).
    """
    overview = _overview_records(api, state)  # asked once: a running job's record is not cached
    state = _with_overview_source(state, overview)
    inputs = data_to_inputs(state.data) if state.data else None
    if not state.model or inputs is None:
        return state, None
    base = _input_size(overview)
    try:
        detail = api.submit(
            "head-detail",
            state.model,
            inputs,
            {**base, "image": state.image, "layer": _detail_layer(api, state, base.get("image_size"))},
        )
        pruning = api.submit(
            "head-pruning",
            state.model,
            inputs,
            {**base, "image": state.image, "layer": state.layer, "head": state.head},
        )
    except ApiError as exc:
        return state, f"Could not prepare the views of this head: {exc}"
    return state.replace(hd=str(detail["id"]), hp=str(pruning["id"])), None


def _overview_records(api: ApiClient, state: HeadState) -> list[JobRecord]:
    """The records of the overview's jobs the link names (those the API knows)."""
    records = []
    for job_id in (state.hi, state.pat, state.ap):
        if job_id:
            try:
                records.append(api.job(job_id))
            except ApiError:
                continue
    return records


def _with_overview_source(state: HeadState, overview: list[JobRecord]) -> HeadState:
    """`state` with model and data from the overview's job records when the link does not name them."""
    if state.model and state.data:
        return state
    for record in overview:
        state = with_source(state, record)
    return state


def _input_size(overview: list[JobRecord]) -> dict[str, Any]:
    """`{"image_size": n}` when the overview's jobs chose an input size (the views must show the same
    grid), else nothing (the model's own)."""
    for record in overview:
        size = (record.get("params") or {}).get("image_size")
        if size is not None:
            return {"image_size": size}
    return {}


def _detail_layer(api: ApiClient, state: HeadState, image_size: int | None) -> int | None:
    """None (every layer, one job per image) when the matrices of all layers fit the dashboard's budget;
    the selected layer when they do not, or when the model's size is unknown: no finished job says
    it, and the spec is not one whose size is known without loading it (a hub id, a folder)."""
    model = _model_block(api, state)
    if model is not None:
        layers, heads = model.layers, model.heads
        tokens = len(model.prefix_tokens) + model.grid[0] * model.grid[1]
    else:
        try:
            geometry = known_geometry(state.model or "")
        except UserError:  # the API says what is wrong with the spec when the job is submitted
            geometry = None
        if geometry is None:
            return state.layer
        layers, heads, tokens = geometry.layers, geometry.heads, geometry.tokens(image_size)
    size_mb = layers * heads * tokens**2 * 2 / 1e6
    return None if size_mb <= get_settings().frontend_head_detail_mb else state.layer


def _model_block(api: ApiClient, state: HeadState) -> ModelBlock | None:
    """The model block of the first finished job the link names (overview or detail)."""
    for job_id in (state.hd, state.hi, state.pat, state.ap):
        if not job_id:
            continue
        try:
            if api.job(job_id).get("status") == "done":
                model = Results(api, job_id).model
                if model is not None:
                    return model
        except ApiError:
            continue
    return None


@PAGE.rebuild
def rebuild_params(state: HeadState, key: str) -> dict[str, Any]:
    """Params of a forgotten job: the light jobs' image, layer and head; the overview's defaults."""
    if key == "hd":
        return {"image": state.image}
    if key == "hp":
        return {"image": state.image, "layer": state.layer, "head": state.head}
    return {}


@PAGE.select(
    Input(ids.HEAD_LAYER, "value"),
    Input(ids.HEAD_HEAD, "value"),
    Input(ids.HEAD_IMAGE, "value"),
    Input(ids.HEAD_CLS, "n_clicks"),
    Input(ids.graph(ids.HEAD_OVERLAY), "clickData"),
    Input(ids.graph(ids.HEAD_MATRIX), "clickData"),
    Input(ids.graph(ids.HEAD_MODES), "clickData"),
)
def select(
    state: HeadState, layer: int, head: int, image: int, _cls: int, overlay: Any, matrix: Any, modes: Any
) -> HeadState | None:
    """Fold a control change or a click into the state; a new layer, head or image points the light jobs
    at it (a query patch or a pruning mode is a slice of what they hold: nothing is submitted)."""
    trigger = ctx.triggered_id
    if trigger == ids.HEAD_CLS:
        return state.replace(query=-1)
    if trigger == ids.graph(ids.HEAD_OVERLAY):
        model = _model_block(get_client(), state)
        patch = patch_from_click(overlay, model.grid if model else (0, 0))
        return state.replace(query=patch) if patch is not None else None
    if trigger == ids.graph(ids.HEAD_MATRIX):
        token = _y_of(matrix)
        return state.replace(query=max(token, -1)) if token is not None else None
    if trigger == ids.graph(ids.HEAD_MODES):
        mode = _x_of(modes)
        return state.replace(mode=mode) if mode is not None else None
    # a menu whose options were just redrawn may send None: keep what the state says then
    changed = state.replace(
        layer=state.layer if layer is None else int(layer),
        head=state.head if head is None else int(head),
        image=state.image if image is None else int(image),
    )
    return derive(get_client(), changed)[0] if changed != state else None


def _y_of(click: Any) -> int | None:
    points = (click or {}).get("points") or []
    return int(points[0]["y"]) if points and points[0].get("y") is not None else None


def _x_of(click: Any) -> int | None:
    points = (click or {}).get("points") or []
    return int(points[0]["x"]) if points and points[0].get("x") is not None else None


@PAGE.render(
    Output(ids.HEAD_CAPTION, "children"),
    Output(ids.HEAD_IMAGE, "options"),
    Output(ids.HEAD_LAYER, "options"),
    Output(ids.HEAD_HEAD, "options"),
    Output(ids.HEAD_BACK_LINK, "href"),
    Output(ids.HEAD_LAYER, "value"),
    Output(ids.HEAD_HEAD, "value"),
    Output(ids.HEAD_IMAGE, "value"),
)
def render(state: HeadState, built: Built) -> tuple[Any, ...]:
    """The caption, the menus for the model's size and the link back to the overview."""
    layers, heads = built.dims
    return (
        built.caption,
        built.image_options,
        _numbers(layers, state.layer),
        _numbers(heads, state.head),
        _overview_url(state),
        state.layer,
        state.head,
        state.image,
    )


# -- drawing the views ------------------------------------------------------------------------------


@PAGE.finish
def _menus(api: ApiClient, state: HeadState, done: set[str], built: Built) -> None:
    """Model size and image menu from whichever finished job knows them (image labels from the
    importance job); the current values are always offered."""
    if built.dims == (0, 0):
        model = _model_block(api, state)
        if model is not None:
            built.dims = (model.layers, model.heads)
    labels: list[int] = []
    summary: dict[str, Any] = {}
    count = state.image + 1
    with contextlib.suppress(ApiError):
        if state.hd in done:
            count = max(count, int(api.summary(str(state.hd)).get("images") or 0))
        if state.hi in done:
            found = Results(api, str(state.hi)).optional("labels")
            labels = [] if found is None else [int(label) for label in found]
            summary = api.summary(str(state.hi))
    built.image_options = [
        {"label": _image_label(i, labels, summary), "value": i} for i in range(max(count, len(labels)))
    ]


def _image_label(i: int, labels: list[int], summary: dict[str, Any]) -> str:
    """`#3 circle` for image 3 labelled circle, `#3` when its label is unknown."""
    name = class_name(summary, labels[i]) if i < len(labels) and labels[i] >= 0 else ""
    return f"#{i} {name}".strip()


@PAGE.part(
    "hd",
    (ids.HEAD_OVERLAY, ids.HEAD_MATRIX, ids.HEAD_VALUES, ids.HEAD_BIPARTITE),
    waiting="Computing the attention of image {state.image} ({kind} job {short}) …",
    reads=("image", "layer", "head", "query"),
)
def _attention(results: Results, state: HeadState, built: Built) -> None:
    model = results.model
    layers = [int(layer) for layer in results.summary.get("layers") or []]
    if model is None or state.layer not in layers or state.head >= model.heads:
        message = f"This job has no L{state.layer} H{state.head}: the model has {_size_text(model)}."
        built.placeholders((ids.HEAD_OVERLAY, ids.HEAD_MATRIX, ids.HEAD_VALUES, ids.HEAD_BIPARTITE), message)
        return
    built.dims = (model.layers, model.heads)
    at = (layers.index(state.layer), state.head)
    grid = model.grid
    prefix = len(model.prefix_tokens)
    tokens = prefix + grid[0] * grid[1]
    token = prefix + state.query if patch_of(state.query, grid) else model.prefix_tokens.index("cls")
    where = _query_text(state.query, grid)

    def matrix() -> np.ndarray:  # (T, T): what this head's views draw, read when a view is built
        return results.array_at("attention", *at).astype(np.float32)

    # built only when sent: a finished pruning job or a click on a mode redraws none of these
    built.figures[ids.HEAD_OVERLAY] = lambda: F.overlay_figure(
        results.array("image"),
        matrix()[token, prefix:].reshape(grid),
        0.6,
        "Inferno",
        f"Attention of {where} · {_selection(state)}",
        marker=patch_of(state.query, grid),
    )
    built.figures[ids.HEAD_MATRIX] = lambda: F.attention_matrix(matrix(), prefix, token)
    built.figures[ids.HEAD_VALUES] = lambda: F.value_histogram(
        results.array_at("hist_counts", *at), results.array_at("hist_edges", *at)
    )
    built.figures[ids.HEAD_BIPARTITE] = lambda: F.bipartite(
        results.array_at("links", *at), tokens, prefix, state.layer
    )
    built.caption.append(
        html.Span(
            f"L{state.layer} H{state.head} · image #{state.image} · query {where}", className="selected-head"
        )
    )


def _selection(state: HeadState) -> str:
    """`L2 H3 · image #5`: what the page shows, in every graph's title (one can tell a stale one)."""
    return f"L{state.layer} H{state.head} · image #{state.image}"


def _size_text(model: ModelBlock | None) -> str:
    return f"{model.layers} layers of {model.heads} heads" if model else "an unknown size"


def _query_text(query: int, grid: tuple[int, int]) -> str:
    """`patch 5 (row 0, col 5)` for a patch query, `CLS` for the CLS query."""
    cell = patch_of(query, grid)
    return f"patch {query} (row {cell[0]}, col {cell[1]})" if cell else "CLS"


PRUNED = {
    "target_prob": ("probability", "Partial pruning: probability of the class per mode"),
    "cls_cosine": ("cosine to unpruned CLS", "Partial pruning: CLS embedding cosine per mode"),
}
"""The value per pruning mode, by array: a classifier's class probability, else (a backbone's) the
cosine of the final CLS embedding to the unpruned one."""


@PAGE.part(
    "hp",
    (ids.HEAD_MODES, ids.HEAD_TOP5),
    waiting="Pruning L{state.layer} H{state.head} of image {state.image} partially ({kind} job {short}) …",
    reads=("image", "layer", "head", "mode"),
)
def _pruning(results: Results, state: HeadState, built: Built) -> None:
    summary = results.summary
    objective = objective_of(summary)
    built.notes += class_notes(
        objective,
        (ids.HEAD_NO_CLASSIFIER, ids.HEAD_PROBE),
        "top-5 predictions and class probabilities per pruning mode need a classifier; the modes show "
        "the CLS embedding's cosine to the unpruned model instead",
    )
    if not objective.has_classes:
        built.hidden.add(ids.HEAD_TOP5)
    name = next((n for n in PRUNED if results.optional(n) is not None), None)
    if name is None:
        built.figures[ids.HEAD_MODES] = F.empty_figure("This job has no partial pruning.")
        return
    values = results.array(name)  # (modes,)
    modes = [str(m) for m in summary.get("modes") or [f"mode {i}" for i in range(len(values))]]
    mode = min(state.mode, len(modes) - 1)
    label, title = PRUNED[name]
    built.figures[ids.HEAD_MODES] = lambda: F.pruning_modes(
        modes, values, mode, label, f"{title} · {_selection(state)}"
    )
    if objective.has_classes:
        _draw_top5(results, modes, mode, built)


def _draw_top5(results: Results, modes: list[str], mode: int, built: Built) -> None:
    """The top-5 classes under pruning mode `mode`."""
    top_idx, top_prob = results.optional("top5_idx"), results.optional("top5_prob")
    if top_idx is None or top_prob is None:
        built.figures[ids.HEAD_TOP5] = F.empty_figure("This job has no top-5 per pruning mode.")
        return
    names = [class_name(results.summary, int(i)) for i in top_idx[mode]]
    built.figures[ids.HEAD_TOP5] = lambda: F.top5_bars(
        names, [float(p) for p in top_prob[mode]], f"Top-5 · {modes[mode]}"
    )
