"""`/head`: one head in detail (the paper's D2–D5 and B2–B3).

Per-image attention comes from an attention-patterns job whose `detail_*` params name this head
and image, partial pruning from a head-importance job whose `partial_*` params name this head.
When the selection differs from what the linked jobs hold, the page submits the same jobs with
the new params (the API answers with the same id for a repeated spec, so revisits are cached)
and writes the new ids into the URL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dash
import numpy as np
import plotly.graph_objects as go
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from frontend import figures as F
from frontend import ids
from frontend.api import ApiClient, ApiError, derive_job, get_client
from frontend.components import field as labelled
from frontend.components import graph_card, notice, page_header
from frontend.results import Results, class_name, uploaded_image
from frontend.state import HeadsState, HeadState, patch_from_click, patch_of, with_source
from frontend.tracker import poll_jobs, register_tracker, tracker_layout

T = ids.HEAD
GRAPHS: tuple[tuple[str, int], ...] = (
    (ids.HEAD_OVERLAY, 5),
    (ids.HEAD_MATRIX, 7),
    (ids.HEAD_MODES, 5),
    (ids.HEAD_TOP5, 3),
    (ids.HEAD_VALUES, 4),
    (ids.HEAD_BIPARTITE, 12),
)


def layout(**query: Any) -> html.Div:
    """The detail view of the head, image and query patch in the URL."""
    state = HeadState.from_query(query)
    api = get_client()
    state, problem = derive(api, state)
    view = poll_jobs(api, state.job_ids())
    state = with_source(state, next(iter(view.records.values()), None))
    built = build(api, state, set(view.done_ids))
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
    return html.Div(
        [
            *tracker_layout(T, state, view),
            *([notice(problem)] if problem else []),
            page_header(
                "Head detail",
                "Click a patch (or a matrix row) to move the query; click a pruning "
                "mode to see its top-5 predictions.",
                controls,
            ),
            html.Div(built.caption, id=ids.HEAD_CAPTION, className="caption"),
            html.Div(
                [graph_card(name, built.figures[name], span) for name, span in GRAPHS], className="grid"
            ),
        ],
        className="page page-head",
    )


dash.register_page(
    __name__, path="/head", title="Head detail · vitscope", name="Head", order=2, layout=layout
)


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


def derive(api: ApiClient, state: HeadState) -> tuple[HeadState, str | None]:
    """Point `pat` and `hi` at jobs computed for this head and image (submitting them if needed)."""
    changes: dict[str, str] = {}
    try:
        if state.pat:
            changes["pat"] = derive_job(
                api,
                state.pat,
                {"detail_layer": state.layer, "detail_head": state.head, "detail_image": state.image},
            )
        if state.hi:
            changes["hi"] = derive_job(api, state.hi, _partial_updates(api, state))
    except ApiError as exc:
        if exc.not_found:  # the tracker explains unknown jobs and offers to recompute them
            return state, None
        return state, f"Could not prepare the jobs for this head: {exc}"
    return (state.replace(**changes) if changes else state), None


def _partial_updates(api: ApiClient, state: HeadState) -> dict[str, Any]:
    assert state.hi is not None
    images = list(api.job(state.hi).get("params", {}).get("partial_images") or [])
    updates: dict[str, Any] = {"partial_layer": state.layer, "partial_head": state.head}
    if state.image not in images:
        updates["partial_images"] = [state.image]
    return updates


def rebuild_params(state: HeadState, key: str) -> dict[str, Any]:
    """Params of a forgotten job: the defaults plus this head's detail or partial-pruning params."""
    if key == "pat":
        return {"detail_layer": state.layer, "detail_head": state.head, "detail_image": state.image}
    if key == "hi":
        return {"partial_layer": state.layer, "partial_head": state.head, "partial_images": [state.image]}
    return {}


register_tracker(T, HeadState, rebuild_params)


@callback(
    Output(T.state, "data"),
    Input(ids.HEAD_LAYER, "value"),
    Input(ids.HEAD_HEAD, "value"),
    Input(ids.HEAD_IMAGE, "value"),
    Input(ids.HEAD_CLS, "n_clicks"),
    Input(ids.graph(ids.HEAD_OVERLAY), "clickData"),
    Input(ids.graph(ids.HEAD_MATRIX), "clickData"),
    Input(ids.graph(ids.HEAD_MODES), "clickData"),
    State(T.state, "data"),
    prevent_initial_call=True,
)
def select(
    layer: int, head: int, image: int, _cls: int, overlay: Any, matrix: Any, modes: Any, data: dict[str, Any]
) -> Any:
    """Fold a control change or a click into the state; new head or image -> derived jobs."""
    state = HeadState.from_store(data)
    trigger = ctx.triggered_id
    if trigger == ids.HEAD_CLS:
        return state.replace(query=-1).to_store()
    if trigger == ids.graph(ids.HEAD_OVERLAY):
        patch = patch_from_click(overlay, _grid(get_client(), state) or (0, 0))
        return state.replace(query=patch).to_store() if patch is not None else no_update
    if trigger == ids.graph(ids.HEAD_MATRIX):
        token = _y_of(matrix)
        return state.replace(query=max(token, -1)).to_store() if token is not None else no_update
    if trigger == ids.graph(ids.HEAD_MODES):
        mode = _x_of(modes)
        return state.replace(mode=mode).to_store() if mode is not None else no_update
    # a menu whose options were just redrawn may send None: keep what the state says then
    changed = state.replace(
        layer=state.layer if layer is None else int(layer),
        head=state.head if head is None else int(head),
        image=state.image if image is None else int(image),
    )
    if changed == state:
        return no_update
    derived, _problem = derive(get_client(), changed)
    return derived.to_store()


def _y_of(click: Any) -> int | None:
    points = (click or {}).get("points") or []
    return int(points[0]["y"]) if points and points[0].get("y") is not None else None


def _x_of(click: Any) -> int | None:
    points = (click or {}).get("points") or []
    return int(points[0]["x"]) if points and points[0].get("x") is not None else None


@callback(
    [Output(ids.graph(name), "figure") for name, _ in GRAPHS],
    Output(ids.HEAD_CAPTION, "children"),
    Output(ids.HEAD_IMAGE, "options"),
    Output(ids.HEAD_LAYER, "options"),
    Output(ids.HEAD_HEAD, "options"),
    Output(ids.HEAD_BACK_LINK, "href"),
    Output(ids.HEAD_LAYER, "value"),
    Output(ids.HEAD_HEAD, "value"),
    Output(ids.HEAD_IMAGE, "value"),
    Input(T.state, "data"),
    Input(T.ready, "data"),
    prevent_initial_call=True,
)
def render(data: dict[str, Any], ready: list[str]) -> tuple[Any, ...]:
    """Redraw the head's views for the state."""
    state = HeadState.from_store(data)
    built = build(get_client(), state, set(ready or []))
    layers, heads = built.dims
    return (
        *[built.figures[name] for name, _ in GRAPHS],
        built.caption,
        built.image_options,
        _numbers(layers, state.layer),
        _numbers(heads, state.head),
        _overview_url(state),
        state.layer,
        state.head,
        state.image,
    )


# -- building the views ---------------------------------------------------------------------------


@dataclass
class Built:
    """The page's figures, caption, image menu and model size (layers, heads)."""

    figures: dict[str, go.Figure] = field(default_factory=dict)
    caption: list[Any] = field(default_factory=list)
    image_options: list[dict[str, Any]] = field(default_factory=list)
    dims: tuple[int, int] = (0, 0)


def build(api: ApiClient, state: HeadState, done: set[str]) -> Built:
    """All views of the head; each says why when its job is absent or still running."""
    built = Built()
    for part, names in (
        (_attention, (ids.HEAD_OVERLAY, ids.HEAD_MATRIX, ids.HEAD_VALUES, ids.HEAD_BIPARTITE)),
        (_pruning, (ids.HEAD_MODES, ids.HEAD_TOP5)),
    ):
        try:
            part(api, state, done, built)
        except ApiError as exc:
            for name in names:
                built.figures[name] = F.empty_figure(f"Could not load results: {exc}")
    for name, _ in GRAPHS:
        if name not in built.figures:
            built.figures[name] = F.empty_figure("…")
    _menus(api, state, done, built)
    return built


def _menus(api: ApiClient, state: HeadState, done: set[str], built: Built) -> None:
    """Model size and image menu from whichever finished job knows them (the patterns summary
    when the importance job is still running); the current values are always offered."""
    summary: dict[str, Any] = {}
    if state.pat in done:
        try:
            summary = api.summary(str(state.pat))
        except ApiError:
            summary = {}
    if built.dims == (0, 0) and summary.get("layers"):
        built.dims = (int(summary["layers"]), int(summary.get("heads") or 0))
    if not built.image_options:
        count = max(int(summary.get("images") or 0), state.image + 1)
        built.image_options = [{"label": f"#{i}", "value": i} for i in range(count)]


def _waiting(job_id: str | None, done: set[str], kind: str, what: str) -> str | None:
    if not job_id:
        return f"No {kind} job in this link: launch one from Home."
    if job_id not in done:
        return f"Computing {what} ({kind} job {job_id[:12]}) …"
    return None


def _grid(api: ApiClient, state: HeadState) -> tuple[int, int] | None:
    """The patch grid (h, w), from the patterns job's summary or its prototype maps."""
    if not state.pat:
        return None
    summary = api.summary(state.pat)
    grid = summary.get("grid") or (summary.get("detail") or {}).get("grid")
    if isinstance(grid, list | tuple) and len(grid) == 2:
        return int(grid[0]), int(grid[1])
    shape = api.result(state.pat, "prototypes_patch").shape
    return int(shape[1]), int(shape[2])


def _attention(api: ApiClient, state: HeadState, done: set[str], built: Built) -> None:
    wait = _waiting(
        state.pat, done, "attention-patterns", f"L{state.layer} H{state.head} on image {state.image}"
    )
    if wait or state.pat is None:
        for name in (ids.HEAD_OVERLAY, ids.HEAD_MATRIX, ids.HEAD_VALUES, ids.HEAD_BIPARTITE):
            built.figures[name] = F.empty_figure(wait or "")
        return
    results = Results.of(api, state.pat)
    matrix = results.array("detail_matrix")
    grid = _grid(api, state) or (1, matrix.shape[0] - 1)
    prefix = matrix.shape[0] - grid[0] * grid[1]
    token = prefix + state.query if patch_of(state.query, grid) else 0
    row = matrix[token, prefix:].reshape(grid)
    image = _picture(api, results, state.image)
    where = (
        f"patch {state.query} (row {divmod(state.query, grid[1])[0]}, col {divmod(state.query, grid[1])[1]})"
        if patch_of(state.query, grid)
        else "CLS"
    )
    built.figures[ids.HEAD_OVERLAY] = F.overlay_figure(
        image,
        row,
        0.6,
        "Inferno",
        f"Attention of {where} · L{state.layer} H{state.head}",
        marker=patch_of(state.query, grid),
    )
    built.figures[ids.HEAD_MATRIX] = F.attention_matrix(matrix, prefix, token)
    counts, edges = results.optional("detail_hist_counts"), results.optional("detail_hist_edges")
    if counts is not None and edges is not None:
        built.figures[ids.HEAD_VALUES] = F.value_histogram(counts, edges)
    links = results.optional("bipartite")
    if links is not None:
        built.figures[ids.HEAD_BIPARTITE] = F.bipartite(links, matrix.shape[0], prefix, state.layer)
    built.caption.append(
        html.Span(
            f"L{state.layer} H{state.head} · image #{state.image} · query {where}", className="selected-head"
        )
    )


def _picture(api: ApiClient, results: Results, image: int) -> np.ndarray | None:
    """The analysed picture: an uploaded image, or the `detail_image` the analysis returned."""
    picture = uploaded_image(api, results.inputs, image)
    if picture is None:
        detail = results.optional("detail_image")
        picture = np.asarray(detail, dtype=np.uint8) if detail is not None else None
    return picture


def _pruning(api: ApiClient, state: HeadState, done: set[str], built: Built) -> None:
    wait = _waiting(state.hi, done, "head-importance", f"partial pruning of L{state.layer} H{state.head}")
    if wait or state.hi is None:
        built.figures[ids.HEAD_MODES] = F.empty_figure(wait or "")
        built.figures[ids.HEAD_TOP5] = F.empty_figure(wait or "")
        return
    results = Results.of(api, state.hi)
    summary = results.summary
    drop = results.array("accuracy_drop")
    built.dims = (int(drop.shape[0]), int(drop.shape[1]))
    _image_options(results, summary, built)
    target = results.optional("partial_target_prob")
    images = list(results.params.get("partial_images") or [0])
    if target is None or state.image not in images:
        built.figures[ids.HEAD_MODES] = F.empty_figure(
            "This job has no partial pruning for this head and image."
        )
        return
    column = images.index(state.image)
    modes = [str(m) for m in summary.get("modes") or [f"mode {i}" for i in range(len(target))]]
    mode = min(state.mode, len(modes) - 1)
    built.figures[ids.HEAD_MODES] = F.pruning_modes(modes, target[:, column], mode)
    top_idx, top_prob = results.array("partial_top5_idx"), results.array("partial_top5_prob")
    names = [class_name(summary, int(i)) for i in top_idx[mode, column]]
    built.figures[ids.HEAD_TOP5] = F.top5_bars(
        names, [float(p) for p in top_prob[mode, column]], f"Top-5 · {modes[mode]}"
    )


def _image_options(results: Results, summary: dict[str, Any], built: Built) -> None:
    labels = results.optional("labels")
    if labels is None:
        return
    built.image_options = [
        {"label": f"#{i} {class_name(summary, int(label)) if label >= 0 else ''}".strip(), "value": i}
        for i, label in enumerate(labels)
    ]
