"""Figures of `/scanpath`: object boxes, the predicted scanpath and the fixation density.

Shapes: `boxes` (N, 4) as x0, y0, x1, y1 in pixels, `scanpath` (K,) object indices.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from frontend.figures.common import HIGHLIGHT, PATCH_COLOR, base_layout, image_source


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
