"""Figure builders: pure functions from arrays to `go.Figure` (no I/O, no Dash, no state).

Shapes use the analyses' names: L layers, H heads, R rings, N images, T tokens, (h, w) the
patch grid. Heads are selected as `(layer, head)`; the selected head wears the same red
ring in every view, and every layer has the same colour everywhere (`layer_colors`).
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


def _ring_trace(x: float, y: float, size: int = 17) -> go.Scatter:
    """The selected-head marker: a red ring drawn over the view's own dot."""
    return go.Scatter(
        x=[x],
        y=[y],
        mode="markers",
        hoverinfo="skip",
        name="selected",
        marker={"size": size, "color": "rgba(0,0,0,0)", "line": {"color": HIGHLIGHT, "width": 3}},
    )


def _head_customdata(n_layers: int, n_heads: int) -> np.ndarray:
    layers, heads = np.meshgrid(np.arange(n_layers), np.arange(n_heads), indexing="ij")
    return np.stack([layers.ravel(), heads.ravel()], axis=1)


# -- view B: head importance --------------------------------------------------------------------


def importance_heatmap(values: np.ndarray, metric_label: str, selected: Head | None) -> go.Figure:
    """Layers × heads heatmap of one importance metric, `values` (L, H); the selection is outlined."""
    values = np.asarray(values, dtype=float)
    diverging = np.nanmin(values) < 0 < np.nanmax(values)
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=list(range(values.shape[1])),
            y=list(range(values.shape[0])),
            colorscale="RdBu_r" if diverging else "Blues",
            zmid=0 if diverging else None,
            colorbar={"thickness": 10, "len": 0.9},
            hovertemplate=f"Layer %{{y}} · head %{{x}}<br>{metric_label}: %{{z:.4f}}<extra></extra>",
        )
    )
    if selected is not None:
        _outline_cell(fig, *selected)
    fig.update_xaxes(title="head", dtick=1, showgrid=False)
    fig.update_yaxes(title="layer", dtick=1, autorange="reversed", showgrid=False)
    return base_layout(fig, f"Head importance · {metric_label}")


def prob_after_line(
    prob_after: np.ndarray, prob_base: float | None, selected: Head | None, image_label: str = ""
) -> go.Figure:
    """Probability of the image's class after pruning each head, `prob_after` (L, H), over all L·H heads."""
    n_layers, n_heads = prob_after.shape
    colors = layer_colors(n_layers)
    x = np.arange(n_layers * n_heads)
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=prob_after.ravel(),
            mode="lines+markers",
            customdata=_head_customdata(n_layers, n_heads),
            line={"color": MUTED, "width": 1},
            marker={"size": 6, "color": [colors[i // n_heads] for i in x]},
            hovertemplate="Layer %{customdata[0]} · head %{customdata[1]}<br>p after pruning: %{y:.4f}<extra></extra>",
        )
    )
    if prob_base is not None:
        fig.add_hline(
            y=float(prob_base),
            line={"dash": "dot", "color": "#444", "width": 1},
            annotation_text=f"unpruned {prob_base:.3f}",
            annotation_position="bottom right",
        )
    if selected is not None:
        layer, head = selected
        fig.add_trace(_ring_trace(layer * n_heads + head, float(prob_after[layer, head])))
    fig.update_xaxes(title="head (layer · H + head)", range=[-1, len(x)], showgrid=False)
    fig.update_yaxes(title="probability", range=[-0.02, 1.04])
    return base_layout(
        fig, f"Probability after pruning each head{' · ' + image_label if image_label else ''}"
    )


def pruning_modes(modes: Sequence[str], target_prob: np.ndarray, selected: int | None) -> go.Figure:
    """Target probability under each partial-pruning mode, `target_prob` (modes,), with a glyph of
    the attention blocks under each bar (CLS row, CLS column, patch block; dark = pruned)."""
    colors = [HIGHLIGHT if i == selected else "#5b6b7b" for i in range(len(modes))]
    fig = go.Figure(
        go.Bar(
            x=list(range(len(modes))),
            y=np.asarray(target_prob, dtype=float),
            marker_color=colors,
            customdata=list(modes),
            text=[f"{p:.3f}" for p in target_prob],
            textposition="outside",
            hovertemplate="%{customdata}<br>probability: %{y:.4f}<extra></extra>",
        )
    )
    for i, name in enumerate(modes):
        for shape in _mode_glyph(i, mode_blocks(name)):
            fig.add_shape(shape)
    fig.update_yaxes(range=[-0.42, 1.18], title="probability", tickvals=[0, 0.25, 0.5, 0.75, 1])
    fig.update_xaxes(
        tickvals=list(range(len(modes))),
        ticktext=[m.replace("_", " ") for m in modes],
        showgrid=False,
        zeroline=False,
    )
    fig.add_hline(y=0, line={"color": "#c9ced4", "width": 1})
    return base_layout(fig, "Partial pruning: probability of the class per mode", height=300)


BLOCKS = ("cls_row", "cls_col", "patch")


def mode_blocks(name: str) -> set[str]:
    """Which attention blocks a partial-pruning mode zeroes: a subset of cls_row, cls_col, patch.

    Accepts the names the head-importance analysis reports (e.g. `none`, `cls_row`, `cls_col`,
    `patch`, `cls_row+cls_col`, `all`/`head`); unknown words prune nothing.
    """
    text = name.lower().replace("-", "_").replace(" ", "_")
    if text in ("all", "head", "full", "whole", "whole_head"):
        return set(BLOCKS)
    found: set[str] = set()
    for part in text.replace("+", ",").replace("&", ",").split(","):
        if "row" in part or part in ("cls_to_patch", "cls_query"):
            found.add("cls_row")
        if "col" in part or part in ("patch_to_cls", "cls_key"):
            found.add("cls_col")
        if "patch" in part and "cls" not in part:
            found.add("patch")
    return found


def _mode_glyph(index: int, pruned: set[str]) -> list[dict[str, object]]:
    """Three blocks of the attention matrix drawn below bar `index` (y from -0.38 to -0.06)."""
    x0, x1, strip, top, bottom = index - 0.25, index + 0.25, 0.09, -0.06, -0.38
    blocks = {
        "cls_row": (x0, x1, top - 0.06, top, CLS_COLOR),
        "cls_col": (x0, x0 + strip, bottom, top - 0.06, CLS_COLOR),
        "patch": (x0 + strip, x1, bottom, top - 0.06, PATCH_COLOR),
    }
    return [
        {
            "type": "rect",
            "x0": a,
            "x1": b,
            "y0": c,
            "y1": d,
            "line": {"width": 0.5, "color": "#fff"},
            "fillcolor": "#3a3f45" if name in pruned else color,
            "opacity": 1.0 if name in pruned else 0.45,
        }
        for name, (a, b, c, d, color) in blocks.items()
    ]


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


# -- view C: attention strength --------------------------------------------------------------------


def entropy_by_layer(
    entropy: np.ndarray, max_entropy: float | None, selected: Head | None, query_label: str = "patch"
) -> go.Figure:
    """Head entropy over rings by layer, `entropy` (L, H): one dot per head, spread within its layer."""
    n_layers, n_heads = entropy.shape
    colors = layer_colors(n_layers)
    # a fixed spread (not random) so a head sits at the same spot in every screenshot
    offsets = np.linspace(-0.3, 0.3, n_heads) if n_heads > 1 else np.zeros(1)
    fig = go.Figure()
    for layer in range(n_layers):
        fig.add_trace(
            go.Scatter(
                x=layer + offsets,
                y=entropy[layer],
                mode="markers",
                name=f"L{layer}",
                customdata=[[layer, h] for h in range(n_heads)],
                marker={"size": 7, "color": colors[layer], "line": {"width": 0.5, "color": "#fff"}},
                hovertemplate="Layer %{customdata[0]} · head %{customdata[1]}<br>entropy: %{y:.3f}<extra></extra>",
            )
        )
    if max_entropy:
        fig.add_hline(
            y=float(max_entropy),
            line={"dash": "dot", "color": "#888", "width": 1},
            annotation_text="uniform",
            annotation_position="top left",
        )
    if selected is not None:
        layer, head = selected
        fig.add_trace(_ring_trace(layer + offsets[head], float(entropy[layer, head])))
    fig.update_xaxes(title="layer", dtick=1, range=[-0.6, n_layers - 0.4], showgrid=False)
    fig.update_yaxes(title="entropy (nats)")
    return base_layout(fig, f"Head entropy across layers · {query_label} queries")


def ring_bars(ring_patch: np.ndarray | None, ring_cls: np.ndarray | None, head: Head) -> go.Figure:
    """Mean attention strength by n-hop (Chebyshev) ring for one head, patch and CLS queries, (R,) each."""
    fig = go.Figure()
    for values, name, color in (
        (ring_patch, "patch queries", PATCH_COLOR),
        (ring_cls, "CLS query", CLS_COLOR),
    ):
        if values is not None:
            fig.add_trace(
                go.Bar(
                    x=list(range(len(values))),
                    y=np.asarray(values, dtype=float),
                    name=name,
                    marker_color=color,
                    hovertemplate=f"{name}<br>%{{x}}-hop ring: %{{y:.5f}}<extra></extra>",
                )
            )
    fig.update_layout(
        barmode="group",
        showlegend=True,
        legend={
            "orientation": "h",
            "y": 0.99,
            "x": 0.99,
            "xanchor": "right",
            "yanchor": "top",
            "bgcolor": "rgba(255,255,255,0.8)",
        },
    )
    fig.update_xaxes(title="n-hop neighbours", dtick=1)
    fig.update_yaxes(title="strength")
    base_layout(fig, f"Attention strength across neighbours · L{head[0]} H{head[1]}")
    fig.update_layout(showlegend=True)
    return fig


def entropy_histogram(
    values: np.ndarray, max_entropy: float | None, head: Head, query_label: str = "patch"
) -> go.Figure:
    """Histogram of one head's entropy over images, `values` (N,)."""
    fig = go.Figure(
        go.Histogram(
            x=np.asarray(values, dtype=float),
            nbinsx=30,
            marker_color="#6b7f95",
            hovertemplate="entropy %{x}<br>%{y} images<extra></extra>",
        )
    )
    if max_entropy:
        fig.add_vline(x=float(max_entropy), line={"dash": "dot", "color": "#888", "width": 1})
    fig.update_xaxes(title="entropy (nats)")
    fig.update_yaxes(title="images")
    return base_layout(fig, f"Head entropy over images · L{head[0]} H{head[1]} · {query_label} queries")


# -- view D: attention patterns ----------------------------------------------------------------------


def density_grid(points: np.ndarray, bins: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smoothed 2D histogram of `points` (M, 2): (x centres (bins,), y centres (bins,), density (bins, bins))."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    pad = (hi - lo) * 0.08 + 1e-9
    counts, xe, ye = np.histogram2d(
        points[:, 0],
        points[:, 1],
        bins=bins,
        range=[[lo[0] - pad[0], hi[0] + pad[0]], [lo[1] - pad[1], hi[1] + pad[1]]],
    )
    kernel = np.exp(-0.5 * (np.arange(-4, 5) / 1.5) ** 2)
    kernel /= kernel.sum()
    # separable Gaussian blur: the raw histogram of a few thousand samples is too speckled to contour
    smooth = np.apply_along_axis(np.convolve, 0, counts, kernel, mode="same")
    smooth = np.apply_along_axis(np.convolve, 1, smooth, kernel, mode="same")
    return (xe[:-1] + xe[1:]) / 2, (ye[:-1] + ye[1:]) / 2, smooth.T


def pattern_map(
    embedding: np.ndarray,
    head_points: np.ndarray,
    n_heads: int,
    selected: Head | None,
    query_label: str = "patch",
) -> go.Figure:
    """2D map of attention patterns: density of all sampled maps `embedding` (M, 2) and one dot per
    head `head_points` (L·H, 2), coloured by layer."""
    x, y, density = density_grid(np.asarray(embedding, dtype=float))
    fig = go.Figure(
        go.Contour(
            x=x,
            y=y,
            z=density,
            showscale=False,
            hoverinfo="skip",
            ncontours=10,
            line={"width": 0.6},
            colorscale=[
                [0, "rgba(255,255,255,0)"],
                [0.05, "rgba(200,204,210,0.35)"],
                [1, "rgba(90,96,104,0.85)"],
            ],
        )
    )
    n_layers = len(head_points) // n_heads
    colors = layer_colors(n_layers)
    for layer in range(n_layers):
        rows = head_points[layer * n_heads : (layer + 1) * n_heads]
        fig.add_trace(
            go.Scatter(
                x=rows[:, 0],
                y=rows[:, 1],
                mode="markers",
                name=f"L{layer}",
                customdata=[[layer, h] for h in range(n_heads)],
                marker={"size": 8, "color": colors[layer], "line": {"width": 0.6, "color": "#fff"}},
                hovertemplate="Layer %{customdata[0]} · head %{customdata[1]}<extra></extra>",
            )
        )
    if selected is not None:
        point = head_points[selected[0] * n_heads + selected[1]]
        fig.add_trace(_ring_trace(float(point[0]), float(point[1]), size=18))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return base_layout(
        fig, f"Attention patterns · {query_label} queries (dots: heads, colour: layer)", height=360
    )


def prototypes_figure(
    prototypes: np.ndarray, head_mix: np.ndarray | None = None, per_row: int = 8
) -> go.Figure:
    """The cluster prototypes, `prototypes` (k, h, w), as one mosaic of small maps; labels give the
    selected head's share of maps in each cluster, `head_mix` (k,), its main cluster in red.

    One heatmap with NaN gutters instead of k subplots: it draws the same, builds ~10x faster.
    """
    k, h, w = prototypes.shape
    cols = min(k, per_row)
    rows = int(np.ceil(k / cols))
    mosaic = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    names = np.full(mosaic.shape, "", dtype=object)
    for i, proto in enumerate(prototypes):
        r, c = divmod(i, cols)
        # each prototype on its own scale: they are shapes to compare, not magnitudes
        span = float(np.ptp(proto)) or 1.0
        mosaic[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = (proto - proto.min()) / span
        names[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = f"C{i}"
    fig = go.Figure(
        go.Heatmap(
            z=mosaic,
            text=names,
            colorscale="Viridis",
            showscale=False,
            hoverongaps=False,
            hovertemplate="%{text}<extra></extra>",
        )
    )
    best = int(np.argmax(head_mix)) if head_mix is not None else None
    for i in range(k):
        r, c = divmod(i, cols)
        label = f"C{i}" + (f" · {head_mix[i]:.0%}" if head_mix is not None else "")
        fig.add_annotation(
            x=c * (w + 1) + (w - 1) / 2,
            y=r * (h + 1) - 0.6,
            text=label,
            showarrow=False,
            yanchor="bottom",
            font={"size": 10, "color": HIGHLIGHT if i == best else "#444"},
        )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    return base_layout(
        fig,
        "Cluster prototypes (decoded; share of the selected head's maps)",
        height=max(360, 120 + 90 * rows),
    )


# -- head detail -------------------------------------------------------------------------------------


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
        _outline_cell(fig, *marker)
    fig.update_xaxes(visible=False, range=[-0.5, w - 0.5])
    fig.update_yaxes(visible=False, range=[h - 0.5, -0.5], scaleanchor="x")
    return base_layout(fig, title, height)


def attention_matrix(matrix: np.ndarray, prefix: int, query_token: int | None) -> go.Figure:
    """The head's full attention matrix `matrix` (T, T), rows = queries; prefix tokens first.

    Token labels count patches from 0 and prefix tokens negatively (CLS = -1), as in the paper.
    """
    labels = np.arange(matrix.shape[0]) - prefix
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=labels,
            y=labels,
            colorscale="Viridis",
            colorbar={"thickness": 10, "len": 0.9},
            hovertemplate="query %{y} → key %{x}<br>attention: %{z:.4f}<extra></extra>",
        )
    )
    # dotted lines split prefix tokens (negative labels) from patches
    fig.add_hline(y=-0.5, line={"color": "#fff", "width": 1, "dash": "dot"})
    fig.add_vline(x=-0.5, line={"color": "#fff", "width": 1, "dash": "dot"})
    if query_token is not None:
        q = query_token - prefix
        fig.add_shape(
            type="rect",
            x0=labels[0] - 0.5,
            x1=labels[-1] + 0.5,
            y0=q - 0.5,
            y1=q + 0.5,
            line={"color": HIGHLIGHT, "width": 2},
        )
    span = [labels[0] - 0.5, labels[-1] + 0.5]
    fig.update_xaxes(title="key token (layer l)", showgrid=False, range=span, constrain="domain")
    fig.update_yaxes(
        title="query token (layer l+1)", range=span[::-1], showgrid=False, scaleanchor="x", constrain="domain"
    )
    return base_layout(fig, "Attention matrix (CLS = -1)", height=420)


def value_histogram(counts: np.ndarray, edges: np.ndarray) -> go.Figure:
    """Histogram of the head's attention values from precomputed `counts` (B,) and `edges` (B+1,)."""
    edges = np.asarray(edges, dtype=float)
    fig = go.Figure(
        go.Bar(
            x=(edges[:-1] + edges[1:]) / 2,
            y=np.asarray(counts, dtype=float),
            width=np.diff(edges),
            marker_color="#6b7f95",
            hovertemplate="value %{x:.4f}<br>%{y} entries<extra></extra>",
        )
    )
    fig.update_xaxes(title="attention value")
    fig.update_yaxes(title="count (log)", type="log", dtick=1)
    return base_layout(fig, "Attention values", height=260)


def bipartite(links: np.ndarray, n_tokens: int, prefix: int, layer: int, bins: int = 5) -> go.Figure:
    """Links from query tokens at layer l+1 (top) to key tokens at layer l (bottom).

    `links` (K, 4): query token, key token, weight, is_cls_link. Links are grouped into a few
    weight bins per kind so thousands of links cost a handful of traces; stronger = darker.
    """
    fig = go.Figure()
    links = np.asarray(links, dtype=float).reshape(-1, 4)
    top = float(links[:, 2].max()) if len(links) else 1.0
    for is_cls, color, name in ((1.0, CLS_COLOR, "CLS"), (0.0, PATCH_COLOR, "patch")):
        chosen = links[links[:, 3] == is_cls]
        edges = np.linspace(0, top, bins + 1)
        for b in range(bins):
            part = chosen[(chosen[:, 2] >= edges[b]) & ((chosen[:, 2] < edges[b + 1]) | (b == bins - 1))]
            if len(part):
                fig.add_trace(_link_trace(part, prefix, color, 0.15 + 0.85 * (b + 1) / bins, name))
    fig.add_trace(
        go.Scatter(
            x=[-prefix, n_tokens - prefix - 1],
            y=[1.04, 1.04],
            mode="text",
            text=[f"queries (layer {layer + 1})", ""],
            textposition="middle right",
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[-prefix, n_tokens - prefix - 1],
            y=[-0.04, -0.04],
            mode="text",
            text=[f"keys (layer {layer})", ""],
            textposition="middle right",
            hoverinfo="skip",
        )
    )
    fig.update_xaxes(title="token (CLS = -1)", range=[-prefix - 1, n_tokens - prefix], showgrid=False)
    fig.update_yaxes(visible=False, range=[-0.12, 1.12])
    return base_layout(fig, f"Strongest links between layer {layer} and layer {layer + 1}", height=260)


def _link_trace(part: np.ndarray, prefix: int, color: str, opacity: float, name: str) -> go.Scatter:
    xs: list[float | None] = []
    ys: list[float | None] = []
    for query, key, _weight, _cls in part:
        xs += [query - prefix, key - prefix, None]
        ys += [1.0, 0.0, None]
    return go.Scatter(
        x=xs,
        y=ys,
        mode="lines",
        line={"color": color, "width": 1.2},
        opacity=opacity,
        name=name,
        hoverinfo="skip",
    )


# -- CAM --------------------------------------------------------------------------------------------


def rank_corr_line(
    rank_corr: np.ndarray, selected: int | None, layer_numbers: Sequence[int] | None = None
) -> go.Figure:
    """Per-layer rank correlation between the trained and random-weights maps, `rank_corr` (L,);
    `selected` indexes `rank_corr`, `layer_numbers` name its entries (default 0..L-1)."""
    layers = list(layer_numbers) if layer_numbers is not None else list(range(len(rank_corr)))
    colors = layer_colors(len(layers))
    fig = go.Figure(
        go.Scatter(
            x=layers,
            y=np.asarray(rank_corr, dtype=float),
            mode="lines+markers",
            line={"color": MUTED},
            marker={"size": 8, "color": colors},
            hovertemplate="layer %{x}<br>Spearman ρ: %{y:.3f}<extra></extra>",
        )
    )
    fig.add_hline(y=0, line={"color": "#888", "width": 1})
    if selected is not None and 0 <= selected < len(layers) and np.isfinite(rank_corr[selected]):
        fig.add_trace(_ring_trace(layers[selected], float(rank_corr[selected]), size=15))
    fig.update_xaxes(title="layer", dtick=1)
    fig.update_yaxes(title="Spearman ρ", range=[-1.05, 1.05])
    return base_layout(fig, "Randomized-weights check (near 0 = the map depends on the weights)", height=260)


# -- scanpath ---------------------------------------------------------------------------------------


def scanpath_figure(
    image: np.ndarray | None,
    boxes: np.ndarray,
    scanpath: Sequence[int],
    probabilities: Sequence[float],
    density: np.ndarray | None,
    target: int | None,
) -> go.Figure:
    """Object boxes (editable shapes) over the scene, the predicted scanpath as numbered fixations
    joined by arrows, and box shading by the fraction of sampled scanpaths fixating each object.

    `boxes` (N, 4) x0, y0, x1, y1 in pixels; `scanpath` (K,) object indices; `density` (N,).
    Shape i is box i, so `relayoutData` edits map back to objects (see `state.apply_box_edits`).
    """
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    fig = go.Figure()
    if image is not None:
        fig.add_trace(go.Image(source=image_source(image), hoverinfo="skip"))
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        fig.add_shape(
            type="rect", x0=x0, y0=y0, x1=x1, y1=y1, editable=True, **_box_style(i, density, target)
        )
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
    fig.add_trace(_box_centres(centres, density, target))
    _add_fixations(fig, centres, list(scanpath), list(probabilities))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    fig.update_layout(dragmode="pan", newshape={"line": {"color": "#ffffff"}})
    return base_layout(
        fig, "Predicted scanpath (numbers: fixation order; drag a box edge to edit)", height=520
    )


def _box_style(index: int, density: np.ndarray | None, target: int | None) -> dict[str, object]:
    share = float(density[index]) if density is not None and index < len(density) else 0.0
    is_target = index == target
    return {
        "line": {
            "color": HIGHLIGHT if is_target else "rgba(255,255,255,0.9)",
            "width": 3 if is_target else 1.5,
        },
        "fillcolor": f"rgba(239,134,54,{0.55 * share:.3f})",
    }


def _box_centres(centres: np.ndarray, density: np.ndarray | None, target: int | None) -> go.Scatter:
    """Clickable object handles (clicking one picks it as the target)."""
    shares = density if density is not None else np.zeros(len(centres))
    labels = [f"object {i}" + (" (target)" if i == target else "") for i in range(len(centres))]
    return go.Scatter(
        x=centres[:, 0],
        y=centres[:, 1],
        mode="markers",
        customdata=list(range(len(centres))),
        text=labels,
        hovertext=[f"{s:.0%}" for s in shares],
        marker={"symbol": "square-open", "size": 10, "color": "rgba(255,255,255,0.8)"},
        hovertemplate="%{text}<br>fixated by %{hovertext} of sampled scanpaths<extra>click: make target</extra>",
    )


def _add_fixations(fig: go.Figure, centres: np.ndarray, path: list[int], probs: list[float]) -> None:
    if not path:
        return
    seen: dict[int, int] = {}
    points = []
    for obj in path:
        # refixations of the same object are nudged apart so every number stays readable
        visit = seen.get(obj, 0)
        seen[obj] = visit + 1
        points.append(centres[obj] + np.array([9.0, -9.0]) * visit)
    xy = np.array(points)
    hover = [
        f"fixation {k + 1}: object {o}" + (f"<br>p = {probs[k]:.3f}" if k < len(probs) else "")
        for k, o in enumerate(path)
    ]
    for k in range(1, len(xy)):
        fig.add_annotation(
            x=xy[k, 0],
            y=xy[k, 1],
            ax=xy[k - 1, 0],
            ay=xy[k - 1, 1],
            xref="x",
            yref="y",
            axref="x",
            ayref="y",
            showarrow=True,
            arrowhead=2,
            arrowsize=1.2,
            arrowwidth=2,
            arrowcolor="rgba(255,230,0,0.9)",
            standoff=11,
            startstandoff=11,
            text="",
        )
    fig.add_trace(
        go.Scatter(
            x=xy[:, 0],
            y=xy[:, 1],
            mode="markers+text",
            text=[str(k + 1) for k in range(len(xy))],
            hovertext=hover,
            hoverinfo="text",
            textfont={"color": "#111", "size": 11},
            marker={"size": 20, "color": "rgba(255,230,0,0.92)", "line": {"color": "#111", "width": 1}},
        )
    )


def density_bars(density: np.ndarray, target: int | None) -> go.Figure:
    """Fraction of sampled scanpaths fixating each object, `density` (N,)."""
    colors = [HIGHLIGHT if i == target else PATCH_COLOR for i in range(len(density))]
    fig = go.Figure(
        go.Bar(
            x=list(range(len(density))),
            y=np.asarray(density, dtype=float),
            marker_color=colors,
            hovertemplate="object %{x}<br>fixated by %{y:.0%}<extra></extra>",
        )
    )
    fig.update_xaxes(title="object", dtick=1)
    fig.update_yaxes(title="share of sampled scanpaths", range=[0, 1.05], tickformat=".0%")
    return base_layout(fig, "Fixation density over sampled scanpaths", height=240)


def _outline_cell(fig: go.Figure, row: int, col: int) -> None:
    """Outline one cell of a heatmap (row, col) in the highlight colour."""
    fig.add_shape(
        type="rect",
        x0=col - 0.5,
        x1=col + 0.5,
        y0=row - 0.5,
        y1=row + 0.5,
        line={"color": HIGHLIGHT, "width": 3},
    )
