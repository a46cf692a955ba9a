"""Figures of `/cam` beyond the shared overlay: the randomized-weights check."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from frontend.figures.common import MUTED, base_layout, layer_colors, ring_trace


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
        fig.add_trace(ring_trace(layers[selected], float(rank_corr[selected]), size=15))
    fig.update_xaxes(title="layer", dtick=1)
    fig.update_yaxes(title="Spearman ρ", range=[-1.05, 1.05])
    return base_layout(fig, "Randomized-weights check (near 0 = the map depends on the weights)", height=260)
