"""What every page's figures share: the look, placeholders, export settings, layer colours, the
selected-head ring, and the patch-grid overlay and top-5 bars that both `/head` and `/cam` draw.

Heads are selected as `(layer, head)`; the selected head wears the same red ring in every view,
and every layer has the same colour everywhere (`layer_colors`).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.colors import sample_colorscale

HIGHLIGHT = "#e0245e"
CLS_COLOR = "#3b75af"
PATCH_COLOR = "#ef8636"
MUTED = "#9aa3ad"
FONT = "Inter, Segoe UI, Helvetica, Arial, sans-serif"
Head = tuple[int, int]


_AXIS = {
    "gridcolor": "#eceef1",
    "zerolinecolor": "#d5d9de",
    "linecolor": "#c9ced4",
    "ticks": "",
    "automargin": True,
}
TEMPLATE = go.layout.Template(
    layout={
        "font": {"family": FONT, "size": 11, "color": "#2a3139"},
        "hoverlabel": {"font": {"family": FONT, "size": 11}},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "xaxis": _AXIS,
        "yaxis": _AXIS,
        "colorway": ["#3b75af", "#ef8636", "#519e3e", "#c53a32", "#8d69b8", "#84584e"],
    }
)
"""A deliberately tiny template: a named Plotly template is deep-copied into every figure and
shipped to the browser with it, and plotly_white made up most of a page's build time and bytes."""


def base_layout(fig: go.Figure, title: str, height: int = 320) -> go.Figure:
    """Apply the dashboard's dense, quiet look to `fig` and return it."""
    fig.update_layout(
        template=TEMPLATE,
        title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 13}},
        height=height,
        margin={"l": 48, "r": 16, "t": 36, "b": 40},
        showlegend=False,
    )
    return fig


def empty_figure(message: str, height: int = 320) -> go.Figure:
    """A blank figure that says why it is blank."""
    fig = go.Figure()
    fig.add_annotation(
        text=message,
        showarrow=False,
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        font={"size": 12, "color": MUTED},
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return base_layout(fig, "", height)


def graph_config(filename: str, fmt: str = "png") -> dict[str, Any]:
    """dcc.Graph config: export through Plotly's modebar as `fmt` (png or svg)."""
    return {
        "displaylogo": False,
        "toImageButtonOptions": {"format": fmt, "filename": filename, "scale": 2 if fmt == "png" else 1},
        "modeBarButtonsToRemove": ["lasso2d", "select2d", "autoScale2d"],
    }


def layer_colors(n_layers: int) -> list[str]:
    """One colour per layer, ordered dark (early) to light (late); the same on every page."""
    if n_layers <= 1:
        return sample_colorscale("Plasma", [0.0])
    return sample_colorscale("Plasma", [0.85 * i / (n_layers - 1) for i in range(n_layers)])


def image_source(image: np.ndarray) -> str:
    """A PNG data URI of a (H, W, 3) uint8 image, for `go.Image(source=...)` (far smaller than z)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def ring_trace(x: float, y: float, size: int = 17) -> go.Scatter:
    """The selected-head marker: a red ring drawn over the view's own dot."""
    return go.Scatter(
        x=[x],
        y=[y],
        mode="markers",
        hoverinfo="skip",
        name="selected",
        marker={"size": size, "color": "rgba(0,0,0,0)", "line": {"color": HIGHLIGHT, "width": 3}},
    )


def head_customdata(n_layers: int, n_heads: int) -> np.ndarray:
    """(layer, head) of every head, layer-major, `(L·H, 2)`: the `customdata` a click reads back."""
    layers, heads = np.meshgrid(np.arange(n_layers), np.arange(n_heads), indexing="ij")
    return np.stack([layers.ravel(), heads.ravel()], axis=1)


def top5_bars(names: Sequence[str], probs: Sequence[float], title: str = "Top-5 predictions") -> go.Figure:
    """Horizontal bars of the top predictions, best on top."""
    fig = go.Figure(
        go.Bar(
            x=list(probs)[::-1],
            y=list(names)[::-1],
            orientation="h",
            marker_color="#4c6a88",
            text=[f"{p:.4f}" for p in list(probs)[::-1]],
            textposition="auto",
            textangle=0,
            hovertemplate="%{y}: %{x:.4f}<extra></extra>",
        )
    )
    fig.update_xaxes(range=[0, max(1e-6, max(probs, default=0)) * 1.15], title="probability")
    fig.update_layout(margin={"l": 110})
    return base_layout(fig, title, height=220)


def overlay_figure(
    image: np.ndarray | None,
    grid: np.ndarray,
    opacity: float,
    colorscale: str,
    title: str,
    value_label: str = "attention",
    marker: tuple[int, int] | None = None,
    zrange: tuple[float, float] | None = None,
    height: int = 380,
) -> go.Figure:
    """A patch-grid heatmap `grid` (h, w) drawn over `image` (H, W, 3) in patch coordinates.

    The axes count patches (x = column, y = row), so a click reads its patch directly; the image
    is stretched under the grid and Plotly smooths the heatmap (the upsampling is done in the
    browser rather than sending an H×W array). `marker` outlines one patch (row, column).
    """
    h, w = grid.shape
    fig = go.Figure()
    if image is not None:
        height_px, width_px = image.shape[:2]
        fig.add_trace(
            go.Image(
                source=image_source(image),
                dx=w / width_px,
                dy=h / height_px,
                x0=-0.5 + w / width_px / 2,
                y0=-0.5 + h / height_px / 2,
                hoverinfo="skip",
            )
        )
    zmin, zmax = zrange if zrange is not None else (None, None)
    fig.add_trace(
        go.Heatmap(
            z=grid,
            x=list(range(w)),
            y=list(range(h)),
            opacity=opacity if image is not None else 1.0,
            colorscale=colorscale,
            zmin=zmin,
            zmax=zmax,
            zsmooth="best" if image is not None else False,
            colorbar={"thickness": 10, "len": 0.8},
            hovertemplate=f"patch row %{{y}}, col %{{x}}<br>{value_label}: %{{z:.4f}}<extra></extra>",
        )
    )
    if marker is not None:
        outline_cell(fig, *marker)
    fig.update_xaxes(visible=False, range=[-0.5, w - 0.5])
    fig.update_yaxes(visible=False, range=[h - 0.5, -0.5], scaleanchor="x")
    return base_layout(fig, title, height)


def outline_cell(fig: go.Figure, row: int, col: int) -> None:
    """Outline one cell of a heatmap (row, col) in the highlight colour."""
    fig.add_shape(
        type="rect",
        x0=col - 0.5,
        x1=col + 0.5,
        y0=row - 0.5,
        y1=row + 0.5,
        line={"color": HIGHLIGHT, "width": 3},
    )
