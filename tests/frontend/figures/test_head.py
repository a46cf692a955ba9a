"""Figure builders of /head: small synthetic arrays in, checked figure contents out."""

from __future__ import annotations

import numpy as np
import pytest

from frontend.figures import common, head


def test_attention_matrix_labels_cls_as_minus_one_and_marks_the_query_row():
    matrix = np.full((5, 5), 0.2)
    fig = head.attention_matrix(matrix, prefix=1, query_token=3)
    heat = fig.data[0]
    assert list(heat.x) == [-1, 0, 1, 2, 3]
    rows = [s for s in fig.layout.shapes if s.type == "rect"]
    assert rows[-1].y0 == pytest.approx(1.5) and rows[-1].y1 == pytest.approx(2.5)


def test_value_histogram_uses_precomputed_bins():
    fig = head.value_histogram(np.array([5, 0, 2]), np.array([0.0, 0.1, 0.3, 0.6]))
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
    assert head.mode_blocks(name) == blocks


def test_pruning_modes_highlights_the_selected_mode_and_draws_a_glyph_each():
    modes = ["none", "patch_to_patch", "whole_head"]
    fig = head.pruning_modes(modes, np.array([0.9, 0.05, 0.01]), selected=1)
    bar = fig.data[0]
    assert list(bar.marker.color) == ["#5b6b7b", common.HIGHLIGHT, "#5b6b7b"]
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == 9
    whole = [s for s in rects if s.x0 >= 1.5]
    assert all(s.fillcolor == "#3a3f45" for s in whole)


def test_bipartite_draws_every_link_once_by_kind():
    links = np.array([[0, 1, 0.9, 1], [2, 3, 0.5, 0], [4, 4, 0.1, 0]], dtype=float)
    fig = head.bipartite(links, n_tokens=5, prefix=1, layer=3)
    lines = [t for t in fig.data if t.mode == "lines"]
    segments = sum(sum(1 for v in t.x if v is None) for t in lines)
    assert segments == 3
    assert {t.line.color for t in lines} == {common.CLS_COLOR, common.PATCH_COLOR}
    assert "layer 3" in fig.layout.title.text
