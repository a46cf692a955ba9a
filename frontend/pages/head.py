"""`/head`: one head in detail (the paper's D2–D5 and B2–B3).

Per-image attention comes from an attention-patterns job whose `detail_*` params name this head
and image, partial pruning from a head-importance job whose `partial_*` params name this head.
When the selection differs from what the linked jobs hold, the page submits the same jobs with
the new params (the API answers with the same id for a repeated spec, so revisits are cached)
and writes the new ids into the URL. A backbone's partial pruning shows the cosine of its final CLS
embedding to the unpruned one per mode; its top-5 panel gives way to a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dash import Input, Output, ctx, dcc, html

from frontend import figures as F
from frontend import ids
from frontend.api import ApiClient, ApiError, derive_job, get_client
from frontend.components import field as labelled
from frontend.components import page_header
from frontend.objective import Objective, class_notes, objective_of
from frontend.page import Graphs, ViewPage, Views
from frontend.results import Results, class_name, uploaded_image
from frontend.state import HeadsState, HeadState, patch_from_click, patch_of

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


@PAGE.rebuild
def rebuild_params(state: HeadState, key: str) -> dict[str, Any]:
    """Params of a forgotten job: the defaults plus this head's detail or partial-pruning params."""
    if key == "pat":
        return {"detail_layer": state.layer, "detail_head": state.head, "detail_image": state.image}
    if key == "hi":
        return {"partial_layer": state.layer, "partial_head": state.head, "partial_images": [state.image]}
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
    """Fold a control change or a click into the state; new head or image -> derived jobs."""
    trigger = ctx.triggered_id
    if trigger == ids.HEAD_CLS:
        return state.replace(query=-1)
    if trigger == ids.graph(ids.HEAD_OVERLAY):
        grid = _grid(Results.of(get_client(), state.pat)) if state.pat else None
        patch = patch_from_click(overlay, grid or (0, 0))
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
    """Model size and image menu from whichever finished job knows them (the patterns summary
    when the importance job is still running); the current values are always offered."""
    summary: dict[str, Any] = {}
    if state.pat in done:
        try:
            summary = api.summary(str(state.pat))
        except ApiError:
            summary = {}
    if built.dims == (0, 0):
        # the model block, else (results stored before it) the patterns summary's own fields
        model = summary.get("model") or summary
        built.dims = (int(model.get("layers") or 0), int(model.get("heads") or 0))
    if not built.image_options:
        count = max(int(summary.get("images") or 0), state.image + 1)
        built.image_options = [{"label": f"#{i}", "value": i} for i in range(count)]


def _grid(results: Results) -> tuple[int, int] | None:
    """The patch grid (h, w) of a patterns job: its model block, else (results stored before that
    block) the grid its `detail` names; None when neither says."""
    model = results.model
    if model is not None:
        return model.grid
    grid = (results.summary.get("detail") or {}).get("grid")
    return (int(grid[0]), int(grid[1])) if isinstance(grid, list) and len(grid) == 2 else None


@PAGE.part(
    "pat",
    (ids.HEAD_OVERLAY, ids.HEAD_MATRIX, ids.HEAD_VALUES, ids.HEAD_BIPARTITE),
    waiting="Computing L{state.layer} H{state.head} on image {state.image} ({kind} job {short}) …",
)
def _attention(results: Results, state: HeadState, built: Built) -> None:
    matrix = results.array("detail_matrix")
    grid = _grid(results) or (1, matrix.shape[0] - 1)
    prefix = matrix.shape[0] - grid[0] * grid[1]
    token = prefix + state.query if patch_of(state.query, grid) else 0
    row = matrix[token, prefix:].reshape(grid)
    image = uploaded_image(results.api, results.inputs, state.image)
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


PARTIAL = {
    "partial_target_prob": ("probability", "Partial pruning: probability of the class per mode"),
    "partial_cls_cosine": ("cosine to unpruned CLS", "Partial pruning: CLS embedding cosine per mode"),
}
"""The value per pruning mode, by array: the class probability, else (a backbone's) the cosine of the
final CLS embedding to the unpruned one."""


@PAGE.part(
    "hi",
    (ids.HEAD_MODES, ids.HEAD_TOP5),
    waiting="Computing partial pruning of L{state.layer} H{state.head} ({kind} job {short}) …",
)
def _pruning(results: Results, state: HeadState, built: Built) -> None:
    summary = results.summary
    objective = objective_of(summary)
    built.dims = _dims(results)
    _image_options(results, summary, built)
    built.notes += class_notes(
        objective,
        (ids.HEAD_NO_CLASSIFIER, ids.HEAD_PROBE),
        "top-5 predictions and class probabilities per pruning mode need a classifier or labelled "
        "images for a probe; the modes show the CLS embedding's cosine to the unpruned model instead",
    )
    if not objective.has_classes:
        built.hidden.add(ids.HEAD_TOP5)
    names = [n for n in PARTIAL if objective.has_classes or n == "partial_cls_cosine"]
    name = next((n for n in names if results.optional(n) is not None), None)
    images = list(results.params.get("partial_images") or [0])
    if name is None or state.image not in images:
        built.figures[ids.HEAD_MODES] = F.empty_figure(
            "This job has no partial pruning for this head and image."
        )
        return
    values, column = results.array(name), images.index(state.image)  # (modes, I)
    modes = [str(m) for m in summary.get("modes") or [f"mode {i}" for i in range(len(values))]]
    mode = min(state.mode, len(modes) - 1)
    built.figures[ids.HEAD_MODES] = F.pruning_modes(modes, values[:, column], mode, *PARTIAL[name])
    if objective.has_classes:
        _draw_top5(results, objective, modes, (mode, column), built)


def _dims(results: Results) -> tuple[int, int]:
    """(layers, heads) of the model: the summary's `model` block, else (results stored before that
    block) the shape of the accuracy drop."""
    model = results.model
    if model is not None:
        return model.layers, model.heads
    drop = results.array("accuracy_drop")
    return int(drop.shape[0]), int(drop.shape[1])


def _draw_top5(
    results: Results, objective: Objective, modes: list[str], at: tuple[int, int], built: Built
) -> None:
    """The top-5 classes under pruning mode `at[0]` for partial image column `at[1]`."""
    top_idx, top_prob = results.optional("partial_top5_idx"), results.optional("partial_top5_prob")
    if top_idx is None or top_prob is None:
        built.figures[ids.HEAD_TOP5] = F.empty_figure("This job has no top-5 per pruning mode.")
        return
    mode, column = at
    names = [class_name(results.summary, int(i)) for i in top_idx[mode, column]]
    probe = " (linear probe)" if objective.name == "probe" else ""
    built.figures[ids.HEAD_TOP5] = F.top5_bars(
        names, [float(p) for p in top_prob[mode, column]], f"Top-5{probe} · {modes[mode]}"
    )


def _image_options(results: Results, summary: dict[str, Any], built: Built) -> None:
    labels = results.optional("labels")
    if labels is None:
        return
    built.image_options = [
        {"label": f"#{i} {class_name(summary, int(label)) if label >= 0 else ''}".strip(), "value": i}
        for i, label in enumerate(labels)
    ]
