"""`/cam`: Eigen-CAM overlays for every layer, with baselines and the randomized-weights check.

Upload an image (or run on built-in scenes) to start an eigencam job; the URL then names the
job, the image in it, the layer, the overlay opacity and the colour map.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from frontend import figures as F
from frontend import ids
from frontend.components import field as labelled
from frontend.components import image_launcher, page_header
from frontend.launch import dataset_spec, start_from_launcher
from frontend.page import Graphs, ViewPage, Views
from frontend.results import Results, top5_of
from frontend.state import COLORMAPS, CamState

GRAPHS: Graphs = (
    (ids.CAM_OVERLAY, 6),
    (ids.CAM_ROLLOUT, 3),
    (ids.CAM_GRADCAM, 3),
    (ids.CAM_TOP5, 4),
    (ids.CAM_RANDOM, 4),
    (ids.CAM_RANK, 4),
)


@dataclass
class Built(Views):
    """The page's figures, its image menu and the analysed layers."""

    image_options: list[dict[str, Any]] = field(default_factory=list)
    layer_numbers: list[int] = field(default_factory=list)
    layer: int | None = None
    image: int = 0


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
    ]


def _marks(numbers: list[int]) -> dict[int, str]:
    """One mark per analysed layer (the slider only stops on marks)."""
    return {n: str(n) for n in numbers}


@PAGE.select(
    Input(ids.CAM_IMAGE, "value"),
    Input(ids.CAM_LAYER, "value"),
    Input(ids.CAM_OPACITY, "value"),
    Input(ids.CAM_CMAP, "value"),
)
def select(
    state: CamState, image: int | None, layer: int | None, opacity: float | None, cmap: str | None
) -> CamState:
    """Fold the view controls into the state (and so the URL)."""
    return state.replace(
        image=state.image if image is None else int(image),
        layer=state.layer if layer is None or ctx.triggered_id != ids.CAM_LAYER else int(layer),
        opacity=state.opacity if opacity is None else float(opacity),
        cmap=cmap or state.cmap,
    )


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
)
def render(state: CamState, built: Built) -> tuple[Any, ...]:
    """The image menu and the layer slider for the analysed layers."""
    numbers = built.layer_numbers or [0]
    layer = built.layer if built.layer is not None else no_update
    return built.image_options, numbers[0], numbers[-1], _marks(numbers), layer, built.image


# -- drawing the views ------------------------------------------------------------------------------


@PAGE.part(
    "job",
    tuple(name for name, _ in GRAPHS),
    absent="Upload an image or run on built-in scenes to compute Eigen-CAM.",
)
def _draw(results: Results, state: CamState, built: Built) -> None:
    cams = results.array("cam")  # (N, L, h, w)
    images = results.optional("images")
    summary = results.summary
    # `cam` holds the analysed layers only (params.layers); the URL names real layer numbers
    numbers = [int(n) for n in summary.get("layers") or range(cams.shape[1])][: cams.shape[1]]
    built.layer_numbers = numbers
    image = min(state.image, len(cams) - 1)
    layer = state.layer if state.layer in numbers else numbers[-1]
    index = numbers.index(layer)
    built.layer, built.image = layer, image
    picture = np.asarray(images[image], dtype=np.uint8) if images is not None else None
    built.image_options = [{"label": _image_label(summary, i), "value": i} for i in range(len(cams))]
    cmap = COLORMAPS[state.cmap]
    built.figures[ids.CAM_OVERLAY] = F.overlay_figure(
        picture,
        cams[image, index],
        state.opacity,
        cmap,
        f"Eigen-CAM · layer {layer}",
        "CAM",
        zrange=(0, 1),
        height=440,
    )
    for name, key, title in (
        (ids.CAM_ROLLOUT, "rollout", "Attention rollout"),
        (ids.CAM_GRADCAM, "gradcam", "Grad-CAM"),
    ):
        grid = results.optional(key)
        built.figures[name] = (
            F.overlay_figure(
                picture, _unit(grid[image]), state.opacity, cmap, title, key, zrange=(0, 1), height=300
            )
            if grid is not None
            else F.empty_figure(f"No {title.lower()} in this job.")
        )
    _draw_checks(results, summary, picture, image, (index, layer), state, built)


def _draw_checks(
    results: Results,
    summary: dict[str, Any],
    picture: np.ndarray | None,
    image: int,
    layer: tuple[int, int],
    state: CamState,
    built: Built,
) -> None:
    """Top-5, the random-weights map and the rank correlations; `layer` is (index in cam, number)."""
    index, number = layer
    idx, prob = results.optional("top5_idx"), results.optional("top5_prob")
    names, probs = top5_of(
        summary, image, idx[image] if idx is not None else None, prob[image] if prob is not None else None
    )
    built.figures[ids.CAM_TOP5] = F.top5_bars(names, probs) if names else F.empty_figure("No predictions.")
    random = results.optional("cam_random")
    if random is not None:
        built.figures[ids.CAM_RANDOM] = F.overlay_figure(
            picture,
            random[image, index],
            state.opacity,
            COLORMAPS[state.cmap],
            f"Random weights · layer {number}",
            "CAM",
            zrange=(0, 1),
            height=300,
        )
    rank = results.optional("rank_corr")
    if rank is not None:
        built.figures[ids.CAM_RANK] = F.rank_corr_line(rank[image], index, built.layer_numbers)


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
