"""Figure builders: small synthetic arrays in, checked figure contents out."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from frontend import figures as F


def _traces(fig, kind: str) -> list:
    return [t for t in fig.data if t.type == kind]


def test_importance_heatmap_keeps_values_and_outlines_the_selected_cell():
    values = np.arange(12, dtype=float).reshape(3, 4) / 10
    fig = F.importance_heatmap(values, "Accuracy drop", (2, 1))
    [heat] = _traces(fig, "heatmap")
    np.testing.assert_allclose(np.asarray(heat.z), values)
    [ring] = fig.layout.shapes
    assert (ring.x0, ring.x1, ring.y0, ring.y1) == (0.5, 1.5, 1.5, 2.5)
    assert "Layer %{y}" in heat.hovertemplate and "head %{x}" in heat.hovertemplate
    assert "Accuracy drop" in heat.hovertemplate


def test_importance_heatmap_centres_a_diverging_scale_on_zero():
    fig = F.importance_heatmap(np.array([[-0.2, 0.1], [0.3, 0.0]]), "Loss change", None)
    heat = fig.data[0]
    assert heat.zmid == 0
    assert not fig.layout.shapes
    positive = F.importance_heatmap(np.array([[0.2, 0.1]]), "Taylor", None).data[0]
    assert positive.zmid is None


def test_prob_after_line_lays_heads_out_layer_major_and_rings_the_selection():
    prob = np.array([[0.9, 0.1, 0.8], [0.5, 0.7, 0.2]])
    fig = F.prob_after_line(prob, 0.95, (1, 2), "#3 disk")
    line, ring = fig.data
    np.testing.assert_allclose(line.y, prob.ravel())
    assert [list(c) for c in line.customdata][4] == [1, 1]
    assert ring.x == (5,) and ring.y == (pytest.approx(0.2),)
    assert "#3 disk" in fig.layout.title.text


def test_entropy_by_layer_has_one_coloured_trace_per_layer_and_a_ring():
    entropy = np.array([[0.1, 2.0], [1.5, 2.5], [2.6, 2.4]])
    fig = F.entropy_by_layer(entropy, float(np.log(14)), (2, 1))
    layers = [t for t in fig.data if t.name and t.name.startswith("L")]
    colors = F.layer_colors(3)
    assert [t.marker.color for t in layers] == colors
    ring = fig.data[-1]
    assert ring.y == (pytest.approx(2.4),)
    assert round(ring.x[0]) == 2  # jitter stays inside the layer's column


def test_layer_colors_are_distinct_and_stable():
    assert len(set(F.layer_colors(12))) == 12
    assert F.layer_colors(12) == F.layer_colors(12)
    assert len(F.layer_colors(1)) == 1


def test_ring_bars_draws_patch_and_cls_profiles():
    fig = F.ring_bars(np.array([1.0, 0.0, 0.0]), np.array([0.2, 0.3, 0.5]), (0, 4))
    names = [t.name for t in fig.data]
    assert names == ["patch queries", "CLS query"]
    np.testing.assert_allclose(fig.data[1].y, [0.2, 0.3, 0.5])
    assert len(F.ring_bars(np.ones(3), None, (0, 0)).data) == 1


def test_entropy_histogram_uses_the_per_image_values():
    fig = F.entropy_histogram(np.array([0.01, 0.02, 0.015]), 2.64, (0, 4))
    np.testing.assert_allclose(fig.data[0].x, [0.01, 0.02, 0.015])
    assert "L0 H4" in fig.layout.title.text


def test_density_grid_peaks_where_the_points_are():
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(-3, 0.1, (500, 2)), rng.normal(3, 0.1, (20, 2))])
    x, y, density = F.density_grid(points, bins=40)
    assert density.shape == (40, 40)
    iy, ix = np.unravel_index(np.argmax(density), density.shape)
    assert x[ix] < 0 and y[iy] < 0
    assert density.sum() == pytest.approx(len(points), rel=0.05)


def test_pattern_map_has_a_dot_per_head_and_rings_the_selected_one():
    rng = np.random.default_rng(1)
    head_points = rng.normal(size=(6, 2))  # 3 layers x 2 heads
    fig = F.pattern_map(rng.normal(size=(200, 2)), head_points, 2, (1, 1), "CLS")
    contour = fig.data[0]
    assert contour.type == "contour"
    dots = [t for t in fig.data if t.type == "scatter" and t.name and t.name.startswith("L")]
    assert sum(len(t.x) for t in dots) == 6
    assert fig.data[-1].x[0] == pytest.approx(head_points[3, 0])
    assert "CLS" in fig.layout.title.text


def test_prototypes_mosaic_separates_maps_and_marks_the_main_cluster():
    protos = np.stack([np.eye(3), np.ones((3, 3)), np.arange(9.0).reshape(3, 3)])
    fig = F.prototypes_figure(protos, np.array([0.1, 0.2, 0.7]))
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.shape == (3, 11)  # three 3x3 maps with one-column gutters
    assert np.isnan(z[:, 3]).all() and np.isnan(z[:, 7]).all()
    labels = [a.text for a in fig.layout.annotations]
    assert labels == ["C0 · 10%", "C1 · 20%", "C2 · 70%"]
    assert fig.layout.annotations[2].font.color == F.HIGHLIGHT


def test_overlay_puts_the_grid_in_patch_coordinates_over_the_image():
    image = np.zeros((64, 32, 3), dtype=np.uint8)
    grid = np.arange(8.0).reshape(4, 2)
    fig = F.overlay_figure(image, grid, 0.4, "Jet", "t", marker=(3, 1))
    picture, heat = fig.data
    assert picture.type == "image" and picture.source.startswith("data:image/png;base64,")
    assert picture.dx == pytest.approx(2 / 32) and picture.dy == pytest.approx(4 / 64)
    assert heat.opacity == 0.4
    np.testing.assert_allclose(np.asarray(heat.z), grid)
    [box] = fig.layout.shapes
    assert (box.x0, box.y0) == (0.5, 2.5)


def test_overlay_without_an_image_is_an_opaque_grid():
    fig = F.overlay_figure(None, np.ones((2, 2)), 0.3, "Viridis", "t")
    assert [t.type for t in fig.data] == ["heatmap"]
    assert fig.data[0].opacity == 1.0


def test_image_source_round_trips_the_pixels():
    image = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    uri = F.image_source(image)
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    np.testing.assert_array_equal(decoded, image)


def test_attention_matrix_labels_cls_as_minus_one_and_marks_the_query_row():
    matrix = np.full((5, 5), 0.2)
    fig = F.attention_matrix(matrix, prefix=1, query_token=3)
    heat = fig.data[0]
    assert list(heat.x) == [-1, 0, 1, 2, 3]
    rows = [s for s in fig.layout.shapes if s.type == "rect"]
    assert rows[-1].y0 == pytest.approx(1.5) and rows[-1].y1 == pytest.approx(2.5)


def test_value_histogram_uses_precomputed_bins():
    fig = F.value_histogram(np.array([5, 0, 2]), np.array([0.0, 0.1, 0.3, 0.6]))
    bar = fig.data[0]
    np.testing.assert_allclose(bar.x, [0.05, 0.2, 0.45])
    np.testing.assert_allclose(bar.width, [0.1, 0.2, 0.3])


@pytest.mark.parametrize(
    ("name", "blocks"),
    [
        ("none", set()),
        ("cls_row", {"cls_row"}),
        ("cls_column", {"cls_col"}),
        ("patch_to_patch", {"patch"}),
        ("cls_row_column", {"cls_row", "cls_col"}),
        ("whole_head", {"cls_row", "cls_col", "patch"}),
    ],
)
def test_mode_blocks_reads_the_head_importance_mode_names(name, blocks):
    assert F.mode_blocks(name) == blocks


def test_pruning_modes_highlights_the_selected_mode_and_draws_a_glyph_each():
    modes = ["none", "patch_to_patch", "whole_head"]
    fig = F.pruning_modes(modes, np.array([0.9, 0.05, 0.01]), selected=1)
    bar = fig.data[0]
    assert list(bar.marker.color) == ["#5b6b7b", F.HIGHLIGHT, "#5b6b7b"]
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == 9
    whole = [s for s in rects if s.x0 >= 1.5]
    assert all(s.fillcolor == "#3a3f45" for s in whole)


def test_top5_bars_put_the_best_prediction_on_top():
    fig = F.top5_bars(["macaw", "bannister", "prison"], [0.6, 0.3, 0.1])
    assert list(fig.data[0].y) == ["prison", "bannister", "macaw"]


def test_bipartite_draws_every_link_once_by_kind():
    links = np.array([[0, 1, 0.9, 1], [2, 3, 0.5, 0], [4, 4, 0.1, 0]], dtype=float)
    fig = F.bipartite(links, n_tokens=5, prefix=1, layer=3)
    lines = [t for t in fig.data if t.mode == "lines"]
    segments = sum(sum(1 for v in t.x if v is None) for t in lines)
    assert segments == 3
    assert {t.line.color for t in lines} == {F.CLS_COLOR, F.PATCH_COLOR}
    assert "layer 3" in fig.layout.title.text


def test_rank_corr_line_names_real_layers():
    fig = F.rank_corr_line(np.array([0.1, -0.2, 0.05]), selected=1, layer_numbers=[2, 5, 11])
    assert list(fig.data[0].x) == [2, 5, 11]
    assert fig.data[-1].x == (5,)


def test_scanpath_figure_numbers_fixations_and_makes_boxes_editable():
    boxes = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [0, 20, 10, 30]], dtype=float)
    fig = F.scanpath_figure(None, boxes, [1, 0, 2], [0.5, 0.4, 0.9], np.array([0.3, 0.8, 1.0]), target=2)
    assert len(fig.layout.shapes) == 3 and all(s.editable for s in fig.layout.shapes)
    assert fig.layout.shapes[2].line.color == F.HIGHLIGHT
    fixations = fig.data[-1]
    assert list(fixations.text) == ["1", "2", "3"]
    assert (fixations.x[0], fixations.y[0]) == (25, 5)
    arrows = [a for a in fig.layout.annotations if a.showarrow]
    assert len(arrows) == 2 and (arrows[0].ax, arrows[0].x) == (25, 5)
    handles = fig.data[0]
    assert list(handles.customdata) == [0, 1, 2]


def test_scanpath_refixations_do_not_hide_each_other():
    boxes = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], dtype=float)
    fig = F.scanpath_figure(None, boxes, [0, 1, 0], [], None, target=None)
    fixations = fig.data[-1]
    assert (fixations.x[0], fixations.y[0]) != (fixations.x[2], fixations.y[2])


def test_density_bars_show_shares_and_the_target():
    fig = F.density_bars(np.array([0.1, 0.9]), target=1)
    assert list(fig.data[0].marker.color) == [F.PATCH_COLOR, F.HIGHLIGHT]


def test_graph_config_exports_through_the_modebar_in_the_chosen_format():
    config = F.graph_config("vitscope-heads", "svg")
    assert config["toImageButtonOptions"]["format"] == "svg"
    assert config["toImageButtonOptions"]["filename"] == "vitscope-heads"


def test_empty_figure_says_why():
    fig = F.empty_figure("Waiting for job abc")
    assert fig.layout.annotations[0].text == "Waiting for job abc"
