"""Figures of `/cam` beyond the shared overlay: maps on the uploaded picture, the randomized-weights check.

A map is (h, w) over the analysed image; the analysed image is a region of the picture the user
uploaded (its crop box, after the model's resize and centre crop), so a `Placement` puts the map back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from frontend.figures.common import HIGHLIGHT, MUTED, base_layout, image_source, layer_colors, ring_trace

Box = tuple[float, float, float, float]
DIM = "rgba(255,255,255,0.55)"  # what lies outside the crop box shows, but quietly: the model never saw it


@dataclass(frozen=True)
class Placement:
    """Where the analysed image lies in the original picture: its `size` (height, width) in pixels
    and the crop `box` (x0, y0, x1, y1) in those pixels."""

    size: tuple[int, int]
    box: Box


def placed_overlay_figure(
    picture: np.ndarray | None,
    placement: Placement,
    grid: np.ndarray,
    opacity: float,
    colorscale: str,
    title: str,
    value_label: str = "CAM",
    zrange: tuple[float, float] | None = None,
    height: int = 380,
) -> go.Figure:
    """A map `grid` (h, w) drawn in its crop box over the original `picture` (any (H', W', 3) size of
    it), in the original picture's pixels; outside the box the picture is dimmed."""
    height_px, width_px = placement.size
    fig = go.Figure()
    if picture is not None:
        sx, sy = width_px / picture.shape[1], height_px / picture.shape[0]
        fig.add_trace(
            go.Image(source=image_source(picture), dx=sx, dy=sy, x0=sx / 2, y0=sy / 2, hoverinfo="skip")
        )
    heatmap = _placed_heatmap(grid, placement.box, value_label)
    zmin, zmax = zrange if zrange is not None else (None, None)
    heatmap.update(colorscale=colorscale, zmin=zmin, zmax=zmax, opacity=opacity if picture is not None else 1)
    fig.add_trace(heatmap)
    for shape in _outside(placement):
        fig.add_shape(shape)
    fig.update_xaxes(visible=False, range=[0, width_px])
    fig.update_yaxes(visible=False, range=[height_px, 0], scaleanchor="x")
    return base_layout(fig, title, height)


def _placed_heatmap(grid: np.ndarray, box: Box, value_label: str) -> go.Heatmap:
    """The map as a heatmap whose cells tile `box` exactly (x and y are the cell centres, in pixels)."""
    h, w = grid.shape
    x0, y0, x1, y1 = box
    return go.Heatmap(
        z=grid,
        x=x0 + (np.arange(w) + 0.5) * (x1 - x0) / w,
        y=y0 + (np.arange(h) + 0.5) * (y1 - y0) / h,
        zsmooth="best",
        colorbar={"thickness": 10, "len": 0.8},
        hovertemplate=f"x %{{x:.0f}}, y %{{y:.0f}} px<br>{value_label}: %{{z:.4f}}<extra></extra>",
    )


def _outside(placement: Placement) -> list[dict[str, object]]:
    """Veils over the parts of the picture outside the crop box, then the box's outline."""
    (height_px, width_px), (x0, y0, x1, y1) = placement.size, placement.box
    veils = [(0, 0, width_px, y0), (0, y1, width_px, height_px), (0, y0, x0, y1), (x1, y0, width_px, y1)]
    shapes: list[dict[str, object]] = [
        {"type": "rect", "x0": a, "y0": b, "x1": c, "y1": d, "fillcolor": DIM, "line": {"width": 0}}
        for a, b, c, d in veils
        if c > a and d > b
    ]
    outline = {"color": "rgba(255,255,255,0.9)", "width": 1, "dash": "dot"}
    return [*shapes, {"type": "rect", "x0": x0, "y0": y0, "x1": x1, "y1": y1, "line": outline}]


def rank_corr_line(
    rank_corr: np.ndarray, selected: int | None, layer_numbers: Sequence[int] | None = None
) -> go.Figure:
    """This image's per-layer |rank correlation| between its trained and random-weights maps (an
    independent random copy), `rank_corr` (L,); `selected` indexes `rank_corr`, `layer_numbers` name
    its entries (default 0..L-1). The Trust panel's check is the model's, over a sample."""
    layers = list(layer_numbers) if layer_numbers is not None else list(range(len(rank_corr)))
    colors = layer_colors(len(layers))
    fig = go.Figure(
        go.Scatter(
            x=layers,
            y=np.asarray(rank_corr, dtype=float),
            mode="lines+markers",
            line={"color": MUTED},
            marker={"size": 8, "color": colors},
            hovertemplate="layer %{x}<br>|Spearman ρ|: %{y:.3f}<extra></extra>",
        )
    )
    if selected is not None and 0 <= selected < len(layers) and np.isfinite(rank_corr[selected]):
        fig.add_trace(ring_trace(layers[selected], float(rank_corr[selected]), size=15))
    fig.update_xaxes(title="layer", dtick=1)
    fig.update_yaxes(title="|Spearman ρ|", range=[0, 1.05])
    title = "This image vs. random weights (near 0 = depends on them)"
    return base_layout(fig, title, height=260)


# -- the Trust panel ------------------------------------------------------------------------------

REFERENCE_COLORS = {"rollout": "#3b75af", "gradcam": "#ef8636", "random": "#888888", "centre": "#56a04a"}
"""Colours of the maps Eigen-CAM is judged against (the Eigen-CAM lines are `HIGHLIGHT`)."""


def method_label(name: str) -> str:
    """A method's name for people: `eigencam/3` -> `Eigen-CAM L3`, `gradcam` -> `Grad-CAM`."""
    if name.startswith("eigencam/"):
        return f"Eigen-CAM L{name.split('/', 1)[1]}"
    return {
        "rollout": "Rollout",
        "gradcam": "Grad-CAM",
        "random": "Random map",
        "centre": "Centre prior",
    }.get(name, name)


def faithfulness_by_layer(
    layer_numbers: Sequence[int],
    deletion: Sequence[float | None],
    insertion: Sequence[float | None],
    references: dict[str, tuple[float | None, float | None]],
    selected: int | None,
    images: int,
) -> go.Figure:
    """Deletion (left, lower is better) and insertion AUC (right, higher is better) of Eigen-CAM per
    layer, (L,) each, beside flat lines for the `references` ({name: (deletion, insertion)}: rollout,
    Grad-CAM, the random map, the centre prior); `selected` indexes the layers."""
    layers = list(layer_numbers)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("deletion AUC ↓", "insertion AUC ↑"))
    for col, values in ((1, deletion), (2, insertion)):
        y = np.asarray([np.nan if v is None else v for v in values], dtype=float)
        fig.add_trace(_auc_line(layers, y, "Eigen-CAM", HIGHLIGHT, col == 1), row=1, col=col)
        for name, pair in references.items():
            value = pair[col - 1]
            flat = np.full(len(layers), np.nan if value is None else value)
            line = _auc_line(layers, flat, method_label(name), REFERENCE_COLORS.get(name, MUTED), col == 1)
            line.update(mode="lines", line={"dash": "dash", "color": REFERENCE_COLORS.get(name, MUTED)})
            fig.add_trace(line, row=1, col=col)
        if selected is not None and 0 <= selected < len(layers) and np.isfinite(y[selected]):
            ring = ring_trace(layers[selected], float(y[selected]), size=15).update(showlegend=False)
            fig.add_trace(ring, row=1, col=col)
    fig.update_xaxes(title="layer", dtick=1)
    return _with_legend(
        base_layout(fig, f"Faithfulness by layer · mean of {images} image{'s' * (images != 1)}")
    )


def _with_legend(fig: go.Figure) -> go.Figure:
    """Two panels side by side with their legend below (which line is which method) and room for
    the panels' titles under the figure's."""
    fig.update_annotations(font={"size": 11})
    return fig.update_layout(
        showlegend=True,
        legend={"orientation": "h", "y": -0.32, "font": {"size": 10}},
        margin={"t": 64, "b": 96},
        height=380,
    )


def _auc_line(layers: list[int], y: np.ndarray, name: str, color: str, legend: bool) -> go.Scatter:
    return go.Scatter(
        x=layers,
        y=y,
        mode="lines+markers",
        name=name,
        legendgroup=name,
        showlegend=legend,
        line={"color": color},
        hovertemplate=f"{name} · layer %{{x}}<br>AUC %{{y:.3f}}<extra></extra>",
    )


def faithfulness_curves(
    fractions: np.ndarray, curves: dict[str, tuple[np.ndarray, np.ndarray]], score: str
) -> go.Figure:
    """Deletion (left) and insertion (right) curves of one image: {method: (deletion, insertion)}, each
    (S,) at `fractions` (S,) of the patches; `score` names what is plotted."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("deletion", "insertion"), shared_yaxes=True)
    for i, (name, pair) in enumerate(curves.items()):
        color = HIGHLIGHT if name.startswith("eigencam/") else REFERENCE_COLORS.get(name, MUTED)
        for col, curve in ((1, pair[0]), (2, pair[1])):
            fig.add_trace(
                go.Scatter(
                    x=np.asarray(fractions, dtype=float),
                    y=np.asarray(curve, dtype=float),
                    mode="lines",
                    name=method_label(name),
                    legendgroup=name,
                    showlegend=col == 1,
                    line={"color": color, "dash": "solid" if i == 0 else "dot"},
                    hovertemplate=f"{method_label(name)}<br>%{{x:.0%}} of patches<br>{score}: %{{y:.3f}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title="share of patches", tickformat=".0%", range=[0, 1])
    fig.update_yaxes(title=score, row=1, col=1)
    return _with_legend(base_layout(fig, "Deletion and insertion · this image"))


def randomization_curve(
    rank_corr: np.ndarray, threshold: float, passed: bool | None, layer: int, sample: str
) -> go.Figure:
    """The cascade: |Spearman| of layer `layer`'s map against the trained one, (S,) after randomizing
    0..S-1 blocks from the top; the pass threshold as a line, the verdict in the title and, under
    it, the images the curve is measured on (`sample`)."""
    steps = np.arange(len(rank_corr))
    fig = go.Figure(
        go.Scatter(
            x=steps,
            y=np.asarray(rank_corr, dtype=float),
            mode="lines+markers",
            line={"color": HIGHLIGHT},
            hovertemplate="%{x} blocks randomized<br>|Spearman ρ|: %{y:.3f}<extra></extra>",
        )
    )
    fig.add_hline(y=threshold, line={"color": "#888", "width": 1, "dash": "dash"})
    verdict = {True: "passes", False: "fails", None: "no reading"}[passed]
    fig.update_xaxes(title="blocks randomized (top down)", dtick=1)
    fig.update_yaxes(title="|Spearman ρ| to trained", range=[0, 1.05])
    title = f"Cascading randomization · layer {layer} {verdict} (< {threshold:g})<br><sup>{sample}</sup>"
    return base_layout(fig, title, 380)
