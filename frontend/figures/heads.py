"""Figures of `/heads`: head importance (view B), attention strength (C) and attention patterns (D).

Shapes: L layers, H heads, R rings, N images, (h, w) the patch grid; a head is `(layer, head)`.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from frontend.figures.common import (
    CLS_COLOR,
    HIGHLIGHT,
    MUTED,
    PATCH_COLOR,
    Head,
    base_layout,
    head_customdata,
    layer_colors,
    outline_cell,
    ring_trace,
)


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
        outline_cell(fig, *selected)
    fig.update_xaxes(title="head", dtick=1, showgrid=False)
    fig.update_yaxes(title="layer", dtick=1, autorange="reversed", showgrid=False)
    return base_layout(fig, f"Head importance · {metric_label}")


def prob_after_line(
    prob_after: np.ndarray,
    prob_base: float | None,
    selected: Head | None,
    image_label: str = "",
    value_label: str = "probability",
    title: str = "Probability after pruning each head",
) -> go.Figure:
    """The image's value after pruning each head, `prob_after` (L, H), over all L·H heads: by default
    the probability of its class (a backbone's line gives its CLS embedding's cosine instead)."""
    n_layers, n_heads = prob_after.shape
    colors = layer_colors(n_layers)
    x = np.arange(n_layers * n_heads)
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=prob_after.ravel(),
            mode="lines+markers",
            customdata=head_customdata(n_layers, n_heads),
            line={"color": MUTED, "width": 1},
            marker={"size": 6, "color": [colors[i // n_heads] for i in x]},
            hovertemplate="Layer %{customdata[0]} · head %{customdata[1]}"
            f"<br>{value_label} after pruning: %{{y:.4f}}<extra></extra>",
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
        fig.add_trace(ring_trace(layer * n_heads + head, float(prob_after[layer, head])))
    fig.update_xaxes(title="head (layer · H + head)", range=[-1, len(x)], showgrid=False)
    low = min(-0.02, float(np.nanmin(prob_after)) - 0.02)  # a cosine may go below 0, a probability not
    fig.update_yaxes(title=value_label, range=[low, 1.04])
    return base_layout(fig, f"{title}{' · ' + image_label if image_label else ''}")


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
        fig.add_trace(ring_trace(layer + offsets[head], float(entropy[layer, head])))
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
        fig.add_trace(ring_trace(float(point[0]), float(point[1]), size=18))
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
