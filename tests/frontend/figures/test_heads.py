"""Figure builders of /heads: small synthetic arrays in, checked figure contents out."""

from __future__ import annotations

import numpy as np
import pytest

from frontend.figures import common, heads


def _traces(fig, kind: str) -> list:
    return [t for t in fig.data if t.type == kind]


def test_importance_heatmap_keeps_values_and_outlines_the_selected_cell():
    values = np.arange(12, dtype=float).reshape(3, 4) / 10
    fig = heads.importance_heatmap(values, "Accuracy drop", (2, 1))
    [heat] = _traces(fig, "heatmap")
    np.testing.assert_allclose(np.asarray(heat.z), values)
    [ring] = fig.layout.shapes
    assert (ring.x0, ring.x1, ring.y0, ring.y1) == (0.5, 1.5, 1.5, 2.5)
    assert "Layer %{y}" in heat.hovertemplate and "head %{x}" in heat.hovertemplate
    assert "Accuracy drop" in heat.hovertemplate


def test_importance_heatmap_centres_a_diverging_scale_on_zero():
    fig = heads.importance_heatmap(np.array([[-0.2, 0.1], [0.3, 0.0]]), "Loss change", None)
    heat = fig.data[0]
    assert heat.zmid == 0
    assert not fig.layout.shapes
    positive = heads.importance_heatmap(np.array([[0.2, 0.1]]), "Taylor", None).data[0]
    assert positive.zmid is None


def test_prob_after_line_lays_heads_out_layer_major_and_rings_the_selection():
    prob = np.array([[0.9, 0.1, 0.8], [0.5, 0.7, 0.2]])
    fig = heads.prob_after_line(prob, 0.95, (1, 2), "#3 disk")
    line, ring = fig.data
    np.testing.assert_allclose(line.y, prob.ravel())
    assert [list(c) for c in line.customdata][4] == [1, 1]
    assert ring.x == (5,) and ring.y == (pytest.approx(0.2),)
    assert "#3 disk" in fig.layout.title.text


def test_entropy_by_layer_has_one_coloured_trace_per_layer_and_a_ring():
    entropy = np.array([[0.1, 2.0], [1.5, 2.5], [2.6, 2.4]])
    fig = heads.entropy_by_layer(entropy, float(np.log(14)), (2, 1))
    layers = [t for t in fig.data if t.name and t.name.startswith("L")]
    colors = common.layer_colors(3)
    assert [t.marker.color for t in layers] == colors
    ring = fig.data[-1]
    assert ring.y == (pytest.approx(2.4),)
    assert round(ring.x[0]) == 2  # jitter stays inside the layer's column


def test_ring_bars_draws_patch_and_cls_profiles():
    fig = heads.ring_bars(np.array([1.0, 0.0, 0.0]), np.array([0.2, 0.3, 0.5]), (0, 4))
    names = [t.name for t in fig.data]
    assert names == ["patch queries", "CLS query"]
    np.testing.assert_allclose(fig.data[1].y, [0.2, 0.3, 0.5])
    assert len(heads.ring_bars(np.ones(3), None, (0, 0)).data) == 1


def test_entropy_histogram_uses_the_per_image_values():
    fig = heads.entropy_histogram(np.array([0.01, 0.02, 0.015]), 2.64, (0, 4))
    np.testing.assert_allclose(fig.data[0].x, [0.01, 0.02, 0.015])
    assert "L0 H4" in fig.layout.title.text


def test_density_grid_peaks_where_the_points_are():
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(-3, 0.1, (500, 2)), rng.normal(3, 0.1, (20, 2))])
    x, y, density = heads.density_grid(points, bins=40)
    assert density.shape == (40, 40)
    iy, ix = np.unravel_index(np.argmax(density), density.shape)
    assert x[ix] < 0 and y[iy] < 0
    assert density.sum() == pytest.approx(len(points), rel=0.05)


def test_pattern_map_has_a_dot_per_head_and_rings_the_selected_one():
    rng = np.random.default_rng(1)
    head_points = rng.normal(size=(6, 2))  # 3 layers x 2 heads
    fig = heads.pattern_map(rng.normal(size=(200, 2)), head_points, 2, (1, 1), "CLS")
    contour = fig.data[0]
    assert contour.type == "contour"
    dots = [t for t in fig.data if t.type == "scatter" and t.name and t.name.startswith("L")]
    assert sum(len(t.x) for t in dots) == 6
    assert fig.data[-1].x[0] == pytest.approx(head_points[3, 0])
    assert "CLS" in fig.layout.title.text


def test_prototypes_mosaic_separates_maps_and_marks_the_main_cluster():
    protos = np.stack([np.eye(3), np.ones((3, 3)), np.arange(9.0).reshape(3, 3)])
    fig = heads.prototypes_figure(protos, np.array([0.1, 0.2, 0.7]))
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.shape == (3, 11)  # three 3x3 maps with one-column gutters
    assert np.isnan(z[:, 3]).all() and np.isnan(z[:, 7]).all()
    labels = [a.text for a in fig.layout.annotations]
    assert labels == ["C0 · 10%", "C1 · 20%", "C2 · 70%"]
    assert fig.layout.annotations[2].font.color == common.HIGHLIGHT
