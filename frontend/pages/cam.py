"""`/cam`: Eigen-CAM overlays for every layer, with baselines and the randomized-weights check.

Upload an image (or run on built-in scenes) to start an eigencam job; the URL then names the
job, the image in it, the layer, the overlay opacity, the colour map and what the maps are drawn
on: an uploaded picture is shown whole, each map in the crop box the model saw (or, on request,
the analysed crop alone). A backbone has no top-5 and no Grad-CAM: their panels give way to a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from frontend import figures as F
from frontend import ids
from frontend.components import field as labelled
from frontend.components import image_launcher, page_header
from frontend.launch import dataset_spec, start_from_launcher
from frontend.objective import Objective, no_classifier_note, objective_of
from frontend.page import Graphs, ViewPage, Views
from frontend.results import Results, top5_of, uploaded_image
from frontend.state import COLORMAPS, PICTURES, CamState

GRAPHS: Graphs = (
    (ids.CAM_OVERLAY, 6),
    (ids.CAM_ROLLOUT, 3),
    (ids.CAM_GRADCAM, 3),
    (ids.CAM_TOP5, 4),
    (ids.CAM_RANDOM, 4),
    (ids.CAM_RANK, 4),
    (ids.CAM_TRUST_AUC, 5),
    (ids.CAM_TRUST_CURVES, 4),
    (ids.CAM_TRUST_CASCADE, 3),
)
TRUST_GRAPHS = (ids.CAM_TRUST_AUC, ids.CAM_TRUST_CURVES, ids.CAM_TRUST_CASCADE)


CLASS_RESULTS = ("top5_idx", "top5_prob", "gradcam", "rank_corr_gradcam")
"""The eigencam results that need a classifier."""
CLASS_PANELS = ((ids.CAM_TOP5, "top-5 predictions"), (ids.CAM_GRADCAM, "Grad-CAM"))
"""The panels that need a classifier, with the names the note gives them."""


@dataclass
class Built(Views):
    """The page's figures, its image menu, the analysed layers, whether the job's pictures are
    uploaded originals the maps can be placed on (then the picture choice is offered), and the
    Trust panel's heading, verdict and table."""

    image_options: list[dict[str, Any]] = field(default_factory=list)
    layer_numbers: list[int] = field(default_factory=list)
    layer: int | None = None
    image: int = 0
    originals: bool = False
    trust: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class Backdrop:
    """What the maps are drawn on: a picture and where the analysed image lies in it (no placement:
    the picture is the analysed image itself)."""

    picture: np.ndarray | None
    placement: F.Placement | None = None


PAGE = ViewPage(__name__, CamState, ids.CAM, GRAPHS, Built, name="CAM", title="Eigen-CAM · vitscope", order=3)
build = PAGE.build


@PAGE.body
def body(state: CamState, built: Built) -> list[Any]:
    """Title and launcher, the view controls, the overlays."""
    return [
        page_header(
            "Eigen-CAM",
            "First principal component of each layer's patch features, "
            "sign-corrected and overlaid; rollout and Grad-CAM for comparison.",
            _launcher(state),
        ),
        html.Div(id=ids.CAM_UPLOAD_NOTICE, className="notices"),
        html.Div(_view_controls(state, built), className="controls-row"),
        PAGE.grid(built),
        html.Div(built.trust, id=ids.CAM_TRUST, className="trust"),
    ]


def _launcher(state: CamState) -> list[Any]:
    return image_launcher("CAM", state.model or "", "an image", "synthscenes:8:seed=0", model_width="w-220")


def _view_controls(state: CamState, built: Built) -> list[Any]:
    numbers = built.layer_numbers or [0]
    layer = built.layer if built.layer is not None else numbers[-1]
    return [
        labelled(
            "Image",
            dcc.Dropdown(id=ids.CAM_IMAGE, options=built.image_options, value=state.image, clearable=False),
            class_name="w-220",
        ),
        labelled(
            "Layer",
            dcc.Slider(
                id=ids.CAM_LAYER,
                min=numbers[0],
                max=numbers[-1],
                step=None,
                value=layer,
                marks=_marks(numbers),
            ),
            class_name="grow",
        ),
        labelled(
            "Opacity",
            dcc.Slider(
                id=ids.CAM_OPACITY,
                min=0,
                max=1,
                step=0.05,
                value=state.opacity,
                marks={0: "0", 0.5: "0.5", 1: "1"},
            ),
            class_name="w-200",
        ),
        labelled(
            "Colour map",
            dcc.Dropdown(
                id=ids.CAM_CMAP,
                options=[{"label": v, "value": k} for k, v in COLORMAPS.items()],
                value=state.cmap,
                clearable=False,
            ),
            class_name="w-140",
        ),
        html.Div(
            labelled(
                "Draw on",
                dcc.RadioItems(
                    id=ids.CAM_PICTURE,
                    options=[{"label": f" {v}", "value": k} for k, v in PICTURES.items()],
                    value=state.picture or "original",
                    inline=True,
                ),
            ),
            id=ids.CAM_PICTURE_FIELD,
            style=_shown(built.originals),
        ),
    ]


def _shown(visible: bool) -> dict[str, str]:
    """The style of a control that only some jobs need: hidden unless `visible`."""
    return {} if visible else {"display": "none"}


def _marks(numbers: list[int]) -> dict[int, str]:
    """One mark per analysed layer (the slider only stops on marks)."""
    return {n: str(n) for n in numbers}


@PAGE.select(
    Input(ids.CAM_IMAGE, "value"),
    Input(ids.CAM_LAYER, "value"),
    Input(ids.CAM_OPACITY, "value"),
    Input(ids.CAM_CMAP, "value"),
    Input(ids.CAM_PICTURE, "value"),
)
def select(
    state: CamState,
    image: int | None,
    layer: int | None,
    opacity: float | None,
    cmap: str | None,
    picture: str | None,
) -> CamState:
    """Fold the view controls into the state (and so the URL; the original picture, the default,
    stays out of it)."""
    return state.replace(
        image=state.image if image is None else int(image),
        layer=state.layer if layer is None or ctx.triggered_id != ids.CAM_LAYER else int(layer),
        opacity=state.opacity if opacity is None else float(opacity),
        cmap=cmap or state.cmap,
        picture=_picture(state.picture, picture),
    )


def _picture(current: str | None, chosen: str | None) -> str | None:
    """The state's `picture` after a choice on the toggle: None for the original (the default)."""
    if chosen not in PICTURES:
        return current
    return None if chosen == "original" else chosen


@callback(
    Output(ids.CAM.state, "data", allow_duplicate=True),
    Output(ids.CAM_UPLOAD_NOTICE, "children"),
    Input(ids.CAM_UPLOAD, "contents"),
    Input(ids.CAM_DATASET_GO, "n_clicks"),
    State(ids.CAM_UPLOAD, "filename"),
    State(ids.CAM_MODEL, "value"),
    State(ids.CAM_DATASET, "value"),
    prevent_initial_call=True,
)
def start(
    contents: str | None, _go: int | None, filename: str | None, model: str | None, dataset: str | None
) -> tuple[Any, Any]:
    """Upload the image (or take the built-in scenes) and start an eigencam job on it."""
    return start_from_launcher(
        CamState.jobs["job"],
        CamState,
        ("Eigen-CAM", "Eigen-CAM"),
        uploaded=ctx.triggered_id == ids.CAM_UPLOAD,
        contents=contents,
        filename=filename,
        model=model,
        dataset=dataset,
        default_dataset=dataset_spec(8, 0),
    )


@PAGE.render(
    Output(ids.CAM_IMAGE, "options"),
    Output(ids.CAM_LAYER, "min"),
    Output(ids.CAM_LAYER, "max"),
    Output(ids.CAM_LAYER, "marks"),
    Output(ids.CAM_LAYER, "value"),
    Output(ids.CAM_IMAGE, "value"),
    Output(ids.CAM_PICTURE_FIELD, "style"),
    Output(ids.CAM_TRUST, "children"),
)
def render(state: CamState, built: Built) -> tuple[Any, ...]:
    """The image menu, the layer slider for the analysed layers, and the picture choice (offered
    for uploaded pictures only)."""
    numbers = built.layer_numbers or [0]
    layer = built.layer if built.layer is not None else no_update
    return (
        built.image_options,
        numbers[0],
        numbers[-1],
        _marks(numbers),
        layer,
        built.image,
        _shown(built.originals),
        built.trust,
    )


# -- drawing the views ------------------------------------------------------------------------------


@PAGE.part(
    "job",
    tuple(name for name, _ in GRAPHS),
    absent="Upload an image or run on built-in scenes to compute Eigen-CAM.",
)
def _draw(results: Results, state: CamState, built: Built) -> None:
    cams = results.array("cam")  # (N, L, h, w)
    summary = results.summary
    # `cam` holds the analysed layers only (params.layers); the URL names real layer numbers
    numbers = [int(n) for n in summary.get("layers") or range(cams.shape[1])][: cams.shape[1]]
    built.layer_numbers = numbers
    image = min(state.image, len(cams) - 1)
    layer = state.layer if state.layer in numbers else numbers[-1]
    index = numbers.index(layer)
    built.layer, built.image = layer, image
    built.image_options = [{"label": _image_label(summary, i), "value": i} for i in range(len(cams))]
    built.originals = _has_originals(results)
    backdrop = _backdrop(results, state, image, built.originals)
    title = f"Eigen-CAM · layer {layer}"
    built.figures[ids.CAM_OVERLAY] = _overlay(backdrop, cams[image, index], state, title, "CAM", 440)
    objective = objective_of(summary)
    _draw_baselines(results, objective, backdrop, image, state, built)
    _draw_top5(results, summary, objective, image, built)
    _draw_checks(results, backdrop, image, (index, layer), state, built)
    _draw_trust(results, summary, image, (index, layer), built)
    _note_missing(objective, built)


def _has_originals(results: Results) -> bool:
    """True when the job ran on uploaded pictures and says where the analysed crops lie in them."""
    names = ("crop_boxes", "original_sizes")
    return bool(results.inputs.get("images")) and all(results.optional(n) is not None for n in names)


def _backdrop(results: Results, state: CamState, image: int, originals: bool) -> Backdrop:
    """The uploaded picture with the crop box when the job has `originals` and the state does not
    ask for the crop; else the analysed image (None when the job returned no images)."""
    if originals and state.picture != "crop":
        size, box = results.array("original_sizes")[image], results.array("crop_boxes")[image]
        x0, y0, x1, y1 = (float(v) for v in box)
        placement = F.Placement((int(size[0]), int(size[1])), (x0, y0, x1, y1))
        return Backdrop(uploaded_image(results.api, results.inputs, image), placement)
    images = results.optional("images")
    return Backdrop(np.asarray(images[image], dtype=np.uint8) if images is not None else None)


def _overlay(
    backdrop: Backdrop, grid: np.ndarray, state: CamState, title: str, value_label: str, height: int
) -> go.Figure:
    """A map (h, w) in [0, 1] over the backdrop, in the state's colours and opacity."""
    cmap, picture, unit = COLORMAPS[state.cmap], backdrop.picture, (0.0, 1.0)
    if backdrop.placement is not None:
        return F.placed_overlay_figure(
            picture, backdrop.placement, grid, state.opacity, cmap, title, value_label, unit, height
        )
    return F.overlay_figure(
        picture, grid, state.opacity, cmap, title, value_label, zrange=unit, height=height
    )


def _draw_baselines(
    results: Results, objective: Objective, backdrop: Backdrop, image: int, state: CamState, built: Built
) -> None:
    """Rollout and Grad-CAM; without a classifier the Grad-CAM panel is hidden, not left empty."""
    for name, key, title in (
        (ids.CAM_ROLLOUT, "rollout", "Attention rollout"),
        (ids.CAM_GRADCAM, "gradcam", "Grad-CAM"),
    ):
        grid = results.optional(key)
        if grid is not None:
            built.figures[name] = _overlay(backdrop, _unit(grid[image]), state, title, key, 300)
        elif key == "gradcam" and not objective.has_classes:
            built.hidden.add(name)
        else:
            built.figures[name] = F.empty_figure(f"No {title.lower()} in this job.")


def _draw_top5(
    results: Results, summary: dict[str, Any], objective: Objective, image: int, built: Built
) -> None:
    """The top-5 bars; a job without top-5 predictions (a backbone's) gets no panel at all."""
    idx, prob = results.optional("top5_idx"), results.optional("top5_prob")
    names, probs = top5_of(
        summary, image, idx[image] if idx is not None else None, prob[image] if prob is not None else None
    )
    if names:
        built.figures[ids.CAM_TOP5] = F.top5_bars(names, probs)
    elif idx is None:
        built.hidden.add(ids.CAM_TOP5)
    else:
        built.figures[ids.CAM_TOP5] = F.empty_figure("No predictions.")


def _note_missing(objective: Objective, built: Built) -> None:
    """The note (`ids.CAM_NO_CLASSIFIER`) naming the hidden class-based panels and why they are gone."""
    gone = [title for name, title in CLASS_PANELS if name in built.hidden]
    if not gone:
        return
    what = " and ".join(gone)
    lead = (
        f"No classifier: {what} {'need' if len(gone) > 1 else 'needs'} one ({objective.spec} is a backbone)."
        if not objective.has_classes
        else f"This job has no {what}."
    )
    built.notes.append(no_classifier_note(ids.CAM_NO_CLASSIFIER, lead, objective, CLASS_RESULTS))


def _draw_checks(
    results: Results,
    backdrop: Backdrop,
    image: int,
    layer: tuple[int, int],
    state: CamState,
    built: Built,
) -> None:
    """The random-weights map and the rank correlations; `layer` is (index in cam, number)."""
    index, number = layer
    random = results.optional("cam_random")
    if random is not None:
        title = f"Random weights · layer {number}"
        built.figures[ids.CAM_RANDOM] = _overlay(backdrop, random[image, index], state, title, "CAM", 300)
    rank = results.optional("rank_corr")
    if rank is not None:
        built.figures[ids.CAM_RANK] = F.rank_corr_line(rank[image], index, built.layer_numbers)


def _draw_trust(
    results: Results, summary: dict[str, Any], image: int, layer: tuple[int, int], built: Built
) -> None:
    """The Trust panel: faithfulness by layer beside the baselines (dataset means), this image's
    curves, the cascading randomization of this layer, and the per-method table."""
    methods = summary.get("faithfulness_methods")
    if not methods:
        built.hidden.update(TRUST_GRAPHS)
        built.trust = [
            html.H2("Trust"),
            html.P("This job has no faithfulness scores (faithfulness was off)."),
        ]
        return
    index, number = layer
    deletion, insertion = summary["deletion_auc_by_method"], summary["insertion_auc_by_method"]
    eigen = [i for i, name in enumerate(methods) if name.startswith("eigencam/")]
    refs = {name: (deletion[i], insertion[i]) for i, name in enumerate(methods) if i not in eigen}
    built.figures[ids.CAM_TRUST_AUC] = F.faithfulness_by_layer(
        built.layer_numbers,
        [deletion[i] for i in eigen],
        [insertion[i] for i in eigen],
        refs,
        index,
        int(summary.get("images") or 0),
    )
    shown = [eigen[index], *(methods.index(n) for n in refs)]
    dele, ins = results.array_at("deletion_curve", image), results.array_at("insertion_curve", image)
    curves = {methods[i]: (dele[i], ins[i]) for i in shown}
    fractions = np.asarray(summary.get("curve_fractions") or np.linspace(0, 1, dele.shape[-1]))
    score = str(summary.get("faithfulness_score") or "score")
    built.figures[ids.CAM_TRUST_CURVES] = F.faithfulness_curves(fractions, curves, score)
    _draw_cascade(results, summary, layer, built)
    built.trust = [html.H2("Trust"), _most_faithful(summary), _trust_table(summary, f"eigencam/{number}")]


def _draw_cascade(results: Results, summary: dict[str, Any], layer: tuple[int, int], built: Built) -> None:
    """The cascading randomization curve of the selected layer (mean over the cascade's images)."""
    index, number = layer
    cascade = results.optional("cascade_rank_corr")
    if cascade is None:
        built.figures[ids.CAM_TRUST_CASCADE] = F.empty_figure("No randomized-weights check in this job.")
        return
    with np.errstate(invalid="ignore"):
        curve = np.nanmean(np.abs(np.asarray(cascade, dtype=float)[:, :, index]), 0)
    reading = (summary.get("sanity") or {}).get(f"eigencam/{number}") or {}
    threshold = float(summary.get("sanity_threshold") or 0.5)
    built.figures[ids.CAM_TRUST_CASCADE] = F.randomization_curve(
        curve, threshold, reading.get("passed"), number, sanity_sample(summary)
    )


def sanity_sample(summary: dict[str, Any]) -> str:
    """Where the randomized-weights readings come from, in words."""
    reference, count = summary.get("sanity_reference"), summary.get("cascade_images")
    if reference in (None, "job"):
        return (
            "on the job's images"
            if count is None
            else f"on the job's first {count} image{'s' * (count != 1)}"
        )
    return f"on the fixed reference sample {reference}"


def _most_faithful(summary: dict[str, Any]) -> html.P:
    """Which method is most faithful over the job's images (insertion minus deletion AUC)."""
    best = summary.get("most_faithful") or {}
    if not best:
        return html.P("No method has a faithfulness score.", id=ids.CAM_TRUST_BEST)
    images = int(summary.get("images") or 0)
    return html.P(
        [
            f"Most faithful over {images} image{'s' * (images != 1)}: ",
            html.Strong(F.method_label(str(best["method"]))),
            f" (insertion − deletion AUC {_number(best.get('insertion_minus_deletion'))}; "
            f"score: {summary.get('faithfulness_score')}).",
        ],
        id=ids.CAM_TRUST_BEST,
    )


TRUST_COLUMNS = (
    ("deletion_auc_by_method", "deletion AUC ↓"),
    ("insertion_auc_by_method", "insertion AUC ↑"),
    ("mass_in_box_by_method", "mass in box"),
    ("pointing_by_method", "pointing hit"),
)
"""The summary's per-method means the Trust table shows, with their column titles."""


def _trust_table(summary: dict[str, Any], selected: str) -> html.Table:
    """One row per method (the selected layer's marked): the means of TRUST_COLUMNS, then the
    randomized-weights check's |rank corr| and verdict; cells a job lacks show `–`."""
    methods = list(summary["faithfulness_methods"])
    columns = [(key, title) for key, title in TRUST_COLUMNS if summary.get(key) is not None]
    sanity = summary.get("sanity") or {}
    box = summary.get("box_share")
    head = ["method", *(title for _, title in columns), "random-weights |ρ|", "check"]
    rows = []
    for i, name in enumerate(methods):
        reading = sanity.get(name) or {}
        passed = reading.get("passed")
        verdict = "–" if passed is None else ("pass" if passed else "fail")
        cells = [F.method_label(name), *(_number(summary[key][i]) for key, _ in columns)]
        cells += [_number(reading.get("rank_corr")), verdict]
        mark = "selected" if name == selected else None
        rows.append(html.Tr([html.Td(c) for c in cells], className=mark, **{"data-method": name}))
    caption = "Means over the job's images"
    if box:
        caption += f"; the box covers {_number(box)} of the image on average"
    if sanity:
        caption += f"; random-weights |ρ| and check {sanity_sample(summary)}"
        if summary.get("sanity_reference") not in (None, "job"):
            caption += ", the same for every job of this model"
    return html.Table(
        [
            html.Caption(caption + "."),
            html.Thead(html.Tr([html.Th(h) for h in head])),
            html.Tbody(rows),
        ],
        id=ids.CAM_TRUST_TABLE,
        className="facts trust-table",
    )


def _number(value: Any) -> str:
    """A table cell: three decimals, `–` for a missing value."""
    return "–" if value is None else f"{float(value):.3f}"


def _unit(grid: np.ndarray) -> np.ndarray:
    """Rescale a map to [0, 1] so one colour bar serves every method."""
    grid = np.asarray(grid, dtype=float)
    span = float(grid.max() - grid.min())
    return (grid - grid.min()) / span if span > 0 else np.zeros_like(grid)


def _image_label(summary: dict[str, Any], index: int) -> str:
    labels = summary.get("labels")
    if isinstance(labels, list) and index < len(labels) and labels[index] not in (None, -1):
        return f"#{index} {labels[index]}"
    return f"#{index}"
