"""`/scanpath`: OAT scanpath prediction on a scene, with editable object boxes.

The scene's objects are drawn as editable boxes; clicking a box's handle makes it the search
target and drag-edits can be sent back as the job's `boxes`. Either way a new scanpath job is
submitted (the same spec gets the same id, so going back is instant) and the URL follows.
Result arrays: `boxes` (N, 4), `scanpath` (K,), `probabilities` (K,), `density` (N,), `image`
(H, W, 3); a leading scene axis is accepted when the job covers several scenes.
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
from frontend.components import graph_card, image_launcher, page_header
from frontend.launch import start_from_launcher
from frontend.results import Results, uploaded_image
from frontend.state import ScanpathState, apply_box_edits, with_source
from frontend.tracker import poll_jobs, register_tracker, tracker_layout

T = ids.SCAN
GRAPHS: tuple[tuple[str, int], ...] = ((ids.SCAN_FIGURE, 8), (ids.SCAN_DENSITY, 4))


def layout(**query: Any) -> html.Div:
    """The scanpath view for the job, scene and target in the URL."""
    state = ScanpathState.from_query(query)
    api = get_client()
    view = poll_jobs(api, state.job_ids())
    state = with_source(state, next(iter(view.records.values()), None))
    built = build(api, state, set(view.done_ids))
    return html.Div(
        [
            *tracker_layout(T, state, view),
            dcc.Store(id=ids.SCAN_EDITS, data=None),
            page_header(
                "Scanpath",
                "Where a person would look, object by object, while searching for the "
                "target (OAT). Click a box's handle to make it the target; drag boxes to edit them.",
                _launcher(state),
            ),
            html.Div(id=ids.SCAN_UPLOAD_NOTICE, className="notices"),
            html.Div(
                [
                    labelled(
                        "Scene",
                        dcc.Dropdown(
                            id=ids.SCAN_IMAGE, options=built.image_options, value=state.image, clearable=False
                        ),
                        class_name="w-140",
                    ),
                    html.Button(
                        "Re-run with edited boxes", id=ids.SCAN_RERUN, className="button", disabled=True
                    ),
                    html.Div(built.caption, id=ids.SCAN_CAPTION, className="caption"),
                ],
                className="controls-row",
            ),
            html.Div(
                [graph_card(name, built.figures[name], span) for name, span in GRAPHS], className="grid"
            ),
        ],
        className="page page-scanpath",
    )


dash.register_page(
    __name__, path="/scanpath", title="Scanpath · vitscope", name="Scanpath", order=4, layout=layout
)


def _launcher(state: ScanpathState) -> list[Any]:
    return image_launcher("SCAN", state.model or "", "a scene", "synthsearch:4:seed=0", model_width="w-200")


def rebuild_params(state: ScanpathState, key: str) -> dict[str, Any]:
    """A forgotten scanpath job is recomputed for the link's target."""
    return {"target": state.target} if state.target is not None else {}


register_tracker(T, ScanpathState, rebuild_params)


@callback(
    Output(T.state, "data"),
    Input(ids.graph(ids.SCAN_FIGURE), "clickData"),
    Input(ids.SCAN_IMAGE, "value"),
    Input(ids.SCAN_RERUN, "n_clicks"),
    State(ids.SCAN_EDITS, "data"),
    State(T.state, "data"),
    prevent_initial_call=True,
)
def select(
    click: Any, image: int | None, _rerun: int | None, edits: list[list[float]] | None, data: dict[str, Any]
) -> Any:
    """A new target (click a box handle), another scene, or edited boxes -> the matching job."""
    state = ScanpathState.from_store(data)
    trigger = ctx.triggered_id
    if trigger == ids.SCAN_IMAGE:
        return (
            state.replace(image=int(image)).to_store()
            if image is not None and image != state.image
            else no_update
        )
    updates: dict[str, Any] = {}
    if trigger == ids.SCAN_RERUN and edits:
        updates = {"boxes": edits, "target": state.target}
    elif trigger == ids.graph(ids.SCAN_FIGURE):
        target = _clicked_object(click)
        if target is None or target == state.target:
            return no_update
        updates = {"target": target}
    if not updates or not state.job:
        return no_update
    try:
        job = derive_job(get_client(), state.job, {k: v for k, v in updates.items() if v is not None})
    except ApiError:
        return no_update
    return state.replace(job=job, target=updates.get("target", state.target)).to_store()


def _clicked_object(click: Any) -> int | None:
    points = (click or {}).get("points") or []
    custom = points[0].get("customdata") if points else None
    return int(custom) if isinstance(custom, int | float) else None


@callback(
    Output(ids.SCAN_EDITS, "data"),
    Output(ids.SCAN_RERUN, "disabled"),
    Input(ids.graph(ids.SCAN_FIGURE), "relayoutData"),
    State(ids.SCAN_EDITS, "data"),
    State(T.state, "data"),
    prevent_initial_call=True,
)
def edit_boxes(relayout: dict[str, Any] | None, edits: list[list[float]] | None, data: dict[str, Any]) -> Any:
    """Keep the user's box edits until they re-run the job with them."""
    if not relayout or not any(key.startswith("shapes") for key in relayout):
        return no_update, no_update
    state = ScanpathState.from_store(data)
    boxes = edits or _boxes(get_client(), state)
    if boxes is None:
        return no_update, no_update
    return apply_box_edits(boxes, relayout), False


def _boxes(api: ApiClient, state: ScanpathState) -> list[list[float]] | None:
    if not state.job:
        return None
    try:
        boxes = Results.of(api, state.job).array("boxes")
    except ApiError:
        return None
    boxes = boxes[min(state.image, len(boxes) - 1)] if boxes.ndim == 3 else boxes
    return [list(map(float, box)) for box in boxes]


@callback(
    Output(T.state, "data", allow_duplicate=True),
    Output(ids.SCAN_UPLOAD_NOTICE, "children"),
    Input(ids.SCAN_UPLOAD, "contents"),
    Input(ids.SCAN_DATASET_GO, "n_clicks"),
    State(ids.SCAN_UPLOAD, "filename"),
    State(ids.SCAN_MODEL, "value"),
    State(ids.SCAN_DATASET, "value"),
    prevent_initial_call=True,
)
def start(
    contents: str | None, _go: int | None, filename: str | None, model: str | None, dataset: str | None
) -> tuple[Any, Any]:
    """Upload the scene (or take built-in search scenes) and start a scanpath job on it."""
    return start_from_launcher(
        "scanpath",
        ScanpathState,
        ("the scanpath job", "Scanpath"),
        uploaded=ctx.triggered_id == ids.SCAN_UPLOAD,
        contents=contents,
        filename=filename,
        model=model,
        dataset=dataset,
        default_dataset="synthsearch:4:seed=0",
    )


@callback(
    [Output(ids.graph(name), "figure") for name, _ in GRAPHS],
    Output(ids.SCAN_IMAGE, "options"),
    Output(ids.SCAN_CAPTION, "children"),
    Output(ids.SCAN_EDITS, "data", allow_duplicate=True),
    Output(ids.SCAN_RERUN, "disabled", allow_duplicate=True),
    Input(T.state, "data"),
    Input(T.ready, "data"),
    prevent_initial_call=True,
)
def render(data: dict[str, Any], ready: list[str]) -> tuple[Any, ...]:
    """Redraw the scene for the state (pending box edits are dropped: they belonged to the old view)."""
    state = ScanpathState.from_store(data)
    built = build(get_client(), state, set(ready or []))
    return (*[built.figures[name] for name, _ in GRAPHS], built.image_options, built.caption, None, True)


# -- building the views ---------------------------------------------------------------------------


@dataclass
class Built:
    """The page's figures, scene menu and caption."""

    figures: dict[str, go.Figure] = field(default_factory=dict)
    image_options: list[dict[str, Any]] = field(default_factory=list)
    caption: list[Any] = field(default_factory=list)


def build(api: ApiClient, state: ScanpathState, done: set[str]) -> Built:
    """The scanpath views for `state` (placeholders while the job runs)."""
    built = Built()
    message = None
    if not state.job:
        message = "Upload a scene or run on built-in search scenes."
    elif state.job not in done:
        message = f"Waiting for the scanpath job {state.job[:12]} …"
    else:
        try:
            _draw(api, state, built)
        except ApiError as exc:
            message = f"Could not load results: {exc}"
    for name, _ in GRAPHS:
        if name not in built.figures:
            built.figures[name] = F.empty_figure(message or "…")
    return built


def _scene(array: np.ndarray | None, scene: int, ndim: int) -> np.ndarray | None:
    """One scene's slice of a result that may carry a leading scene axis."""
    if array is None:
        return None
    return array[min(scene, len(array) - 1)] if array.ndim == ndim + 1 else array


def _draw(api: ApiClient, state: ScanpathState, built: Built) -> None:
    assert state.job is not None
    results = Results.of(api, state.job)
    all_boxes = results.array("boxes")
    scenes = len(all_boxes) if all_boxes.ndim == 3 else 1
    boxes = _scene(all_boxes, state.image, 2)
    assert boxes is not None
    path = _scene(results.optional("scanpath"), state.image, 1)
    probs = _scene(results.optional("probabilities"), state.image, 1)
    density = _scene(results.optional("density"), state.image, 1)
    image = _scene(results.optional("image"), state.image, 3)
    if image is None:
        image = uploaded_image(api, results.inputs, state.image)
    target = _target(state, results)
    path_list = [int(i) for i in path if 0 <= int(i) < len(boxes)] if path is not None else []
    built.figures[ids.SCAN_FIGURE] = F.scanpath_figure(
        np.asarray(image, dtype=np.uint8) if image is not None else None,
        boxes,
        path_list,
        [float(p) for p in probs] if probs is not None else [],
        density,
        target,
    )
    if density is not None:
        built.figures[ids.SCAN_DENSITY] = F.density_bars(density, target)
    built.image_options = [{"label": f"scene {i}", "value": i} for i in range(scenes)]
    found = target is not None and target in path_list
    built.caption = [
        html.Span(
            f"target: object {target}" if target is not None else "target: none", className="selected-head"
        ),
        html.Span(f" · {len(path_list)} fixations" + (" · target found" if found else "")),
    ]


def _target(state: ScanpathState, results: Results) -> int | None:
    if state.target is not None:
        return state.target
    for source in (results.params, results.summary):
        value = source.get("target")
        if isinstance(value, int):
            return value
        if isinstance(value, list) and value and isinstance(value[0], int):
            return int(value[min(state.image, len(value) - 1)])
    return None
