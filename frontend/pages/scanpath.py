"""`/scanpath`: OAT scanpath prediction on a scene, with editable object boxes.

The scene's objects are drawn as editable boxes; clicking a box's handle makes it the search
target and drag-edits can be sent back as the job's `boxes`. Either way a new scanpath job is
submitted (the same spec gets the same id, so going back is instant) and the URL follows.
Result arrays (declared in `vitscope/contracts/kinds/scanpath.py`): `boxes` (N?, objects, 4),
`scanpath` and `probabilities` (N?, steps), `density` (N?, objects), `image` (N?, height, width, 3);
the scene axis N? is absent for a single uploaded scene.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from frontend import figures as F
from frontend import ids
from frontend.api import ApiClient, ApiError, derive_job, get_client
from frontend.components import field as labelled
from frontend.components import image_launcher, page_header
from frontend.launch import start_from_launcher
from frontend.page import Graphs, ViewPage, Views
from frontend.results import Results, uploaded_image
from frontend.state import ScanpathState, apply_box_edits

GRAPHS: Graphs = ((ids.SCAN_FIGURE, 8), (ids.SCAN_DENSITY, 4))


@dataclass
class Built(Views):
    """The page's figures, scene menu and caption."""

    image_options: list[dict[str, Any]] = field(default_factory=list)
    caption: list[Any] = field(default_factory=list)


PAGE = ViewPage(
    __name__, ScanpathState, ids.SCAN, GRAPHS, Built, name="Scanpath", title="Scanpath · vitscope", order=4
)
build = PAGE.build


@PAGE.body
def body(state: ScanpathState, built: Built) -> list[Any]:
    """The box edits store, title and launcher, the scene controls, the views."""
    return [
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
                html.Button("Re-run with edited boxes", id=ids.SCAN_RERUN, className="button", disabled=True),
                html.Div(built.caption, id=ids.SCAN_CAPTION, className="caption"),
            ],
            className="controls-row",
        ),
        PAGE.grid(built),
    ]


def _launcher(state: ScanpathState) -> list[Any]:
    return image_launcher("SCAN", state.model or "", "a scene", "synthsearch:4:seed=0", model_width="w-200")


@PAGE.rebuild
def rebuild_params(state: ScanpathState, key: str) -> dict[str, Any]:
    """A forgotten scanpath job is recomputed for the link's target."""
    return {"target": state.target} if state.target is not None else {}


@PAGE.select(
    Input(ids.graph(ids.SCAN_FIGURE), "clickData"),
    Input(ids.SCAN_IMAGE, "value"),
    Input(ids.SCAN_RERUN, "n_clicks"),
    State(ids.SCAN_EDITS, "data"),
)
def select(
    state: ScanpathState, click: Any, image: int | None, _rerun: int | None, edits: list[list[float]] | None
) -> ScanpathState | None:
    """A new target (click a box handle), another scene, or edited boxes -> the matching job."""
    trigger = ctx.triggered_id
    if trigger == ids.SCAN_IMAGE:
        return state.replace(image=int(image)) if image is not None else None
    updates: dict[str, Any] = {}
    if trigger == ids.SCAN_RERUN and edits:
        updates = {"boxes": edits, "target": state.target}
    elif trigger == ids.graph(ids.SCAN_FIGURE):
        target = _clicked_object(click)
        if target is None or target == state.target:
            return None
        updates = {"target": target}
    if not updates or not state.job:
        return None
    try:
        job = derive_job(get_client(), state.job, {k: v for k, v in updates.items() if v is not None})
    except ApiError:
        return None
    return state.replace(job=job, target=updates.get("target", state.target))


def _clicked_object(click: Any) -> int | None:
    points = (click or {}).get("points") or []
    custom = points[0].get("customdata") if points else None
    return int(custom) if isinstance(custom, int | float) else None


@callback(
    Output(ids.SCAN_EDITS, "data"),
    Output(ids.SCAN_RERUN, "disabled"),
    Input(ids.graph(ids.SCAN_FIGURE), "relayoutData"),
    State(ids.SCAN_EDITS, "data"),
    State(ids.SCAN.state, "data"),
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
    """The shown scene's boxes (x0, y0, x1, y1), None while the job has none to give."""
    if not state.job:
        return None
    try:
        boxes = Results.of(api, state.job).item("boxes", state.image)
    except ApiError:
        return None
    return [list(map(float, box)) for box in boxes] if boxes is not None else None


@callback(
    Output(ids.SCAN.state, "data", allow_duplicate=True),
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
        ScanpathState.jobs["job"],
        ScanpathState,
        ("the scanpath job", "Scanpath"),
        uploaded=ctx.triggered_id == ids.SCAN_UPLOAD,
        contents=contents,
        filename=filename,
        model=model,
        dataset=dataset,
        default_dataset="synthsearch:4:seed=0",
    )


@PAGE.render(
    Output(ids.SCAN_IMAGE, "options"),
    Output(ids.SCAN_CAPTION, "children"),
    Output(ids.SCAN_EDITS, "data", allow_duplicate=True),
    Output(ids.SCAN_RERUN, "disabled", allow_duplicate=True),
)
def render(state: ScanpathState, built: Built) -> tuple[Any, ...]:
    """The scene menu and caption; pending box edits are dropped (they belonged to the old view)."""
    return built.image_options, built.caption, None, True


# -- drawing the views ------------------------------------------------------------------------------


@PAGE.part(
    "job", (ids.SCAN_FIGURE, ids.SCAN_DENSITY), absent="Upload a scene or run on built-in search scenes."
)
def _draw(results: Results, state: ScanpathState, built: Built) -> None:
    boxes = results.item("boxes", state.image)  # (objects, 4) of the shown scene
    assert boxes is not None
    path = results.item("scanpath", state.image)
    probs = results.item("probabilities", state.image)
    density = results.item("density", state.image)
    image = results.item("image", state.image)
    if image is None:
        image = uploaded_image(results.api, results.inputs, state.image)
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
    built.image_options = [{"label": f"scene {i}", "value": i} for i in range(results.count("boxes"))]
    found = target is not None and target in path_list
    built.caption = [
        html.Span(
            f"target: object {target}" if target is not None else "target: none", className="selected-head"
        ),
        html.Span(f" · {len(path_list)} fixations" + (" · target found" if found else "")),
    ]


def _target(state: ScanpathState, results: Results) -> int | None:
    """The target object: the link's, else the job's `target` param, else the one the job chose
    for this scene (the summary's `target`, one per scene)."""
    if state.target is not None:
        return state.target
    if isinstance(results.params.get("target"), int):
        return int(results.params["target"])
    chosen = results.summary.get("target") or []
    return int(chosen[min(state.image, len(chosen) - 1)]) if chosen else None
