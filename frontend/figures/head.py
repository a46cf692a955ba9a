"""Figures of `/head`: one head's attention matrix, values and links, and its partial pruning.

Shapes: T tokens (prefix tokens first), K links, B histogram bins.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from frontend.figures.common import CLS_COLOR, HIGHLIGHT, PATCH_COLOR, base_layout


def pruning_modes(
    modes: Sequence[str],
    target_prob: np.ndarray,
    selected: int | None,
    value_label: str = "probability",
    title: str = "Partial pruning: probability of the class per mode",
) -> go.Figure:
    """Target probability under each partial-pruning mode, `target_prob` (modes,) (a backbone's bars
    give its CLS embedding's cosine instead), with a glyph of the attention blocks under each bar
    (CLS row, CLS column, patch block; dark = pruned)."""
    colors = [HIGHLIGHT if i == selected else "#5b6b7b" for i in range(len(modes))]
    fig = go.Figure(
        go.Bar(
            x=list(range(len(modes))),
            y=np.asarray(target_prob, dtype=float),
            marker_color=colors,
            customdata=list(modes),
            text=[f"{p:.3f}" for p in target_prob],
            textposition="outside",
            hovertemplate=f"%{{customdata}}<br>{value_label}: %{{y:.4f}}<extra></extra>",
        )
    )
    # one layout update for every glyph: add_shape re-validates the whole list each time
    fig.update_layout(
        shapes=[shape for i, name in enumerate(modes) for shape in _mode_glyph(i, mode_blocks(name))]
    )
    fig.update_yaxes(range=[-0.42, 1.18], title=value_label, tickvals=[0, 0.25, 0.5, 0.75, 1])
    fig.update_xaxes(
        tickvals=list(range(len(modes))),
        ticktext=[m.replace("_", " ") for m in modes],
        showgrid=False,
        zeroline=False,
    )
    fig.add_hline(y=0, line={"color": "#c9ced4", "width": 1})
    return base_layout(fig, title, height=300)


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


MAX_MATRIX_SIDE = 320
"""The most rows and columns the matrix heatmap draws; a larger matrix is shown block-wise."""


def attention_matrix(matrix: np.ndarray, prefix: int, query_token: int | None) -> go.Figure:
    """The head's attention matrix `matrix` (T, T), rows = queries; prefix tokens first.

    Token labels count patches from 0 and prefix tokens negatively (CLS = -1), as in the paper. Over
    `MAX_MATRIX_SIDE` tokens (a 37 x 37 grid is 1,370), each cell is the largest entry of a k x k block
    of tokens, labelled by its first token, so that a strong link never disappears from the picture.
    """
    step = -(-matrix.shape[0] // MAX_MATRIX_SIDE)
    labels = np.arange(0, matrix.shape[0], step) - prefix
    if step > 1:
        matrix = block_max(matrix, step)
        query_token = None if query_token is None else query_token - query_token % step
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
    half = step / 2
    if query_token is not None:
        q = query_token - prefix
        fig.add_shape(
            type="rect",
            x0=labels[0] - half,
            x1=labels[-1] + half,
            y0=q - half,
            y1=q + half,
            line={"color": HIGHLIGHT, "width": 2},
        )
    span = [labels[0] - half, labels[-1] + half]
    fig.update_xaxes(title="key token (layer l)", showgrid=False, range=span, constrain="domain")
    fig.update_yaxes(
        title="query token (layer l+1)", range=span[::-1], showgrid=False, scaleanchor="x", constrain="domain"
    )
    title = (
        "Attention matrix (CLS = -1)"
        if step == 1
        else f"Attention matrix (CLS = -1; max of {step}x{step} blocks)"
    )
    return base_layout(fig, title, height=420)


def block_max(matrix: np.ndarray, step: int) -> np.ndarray:
    """The largest entry of each `step` x `step` block of `matrix` (the last blocks may be smaller)."""
    rows = np.maximum.reduceat(matrix, np.arange(0, matrix.shape[0], step), axis=0)
    return np.maximum.reduceat(rows, np.arange(0, matrix.shape[1], step), axis=1)


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
