"""Figure builders of /scanpath: small synthetic arrays in, checked figure contents out."""

from __future__ import annotations

import numpy as np

from frontend.figures import common, scanpath


def test_scanpath_figure_numbers_fixations_and_makes_boxes_editable():
    boxes = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [0, 20, 10, 30]], dtype=float)
    fig = scanpath.scanpath_figure(
        None, boxes, [1, 0, 2], [0.5, 0.4, 0.9], np.array([0.3, 0.8, 1.0]), target=2
    )
    assert len(fig.layout.shapes) == 3 and all(s.editable for s in fig.layout.shapes)
    assert fig.layout.shapes[2].line.color == common.HIGHLIGHT
    fixations = fig.data[-1]
    assert list(fixations.text) == ["1", "2", "3"]
    assert (fixations.x[0], fixations.y[0]) == (25, 5)
    arrows = [a for a in fig.layout.annotations if a.showarrow]
    assert len(arrows) == 2 and (arrows[0].ax, arrows[0].x) == (25, 5)
    handles = fig.data[0]
    assert list(handles.customdata) == [0, 1, 2]


def test_scanpath_refixations_do_not_hide_each_other():
    boxes = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], dtype=float)
    fig = scanpath.scanpath_figure(None, boxes, [0, 1, 0], [], None, target=None)
    fixations = fig.data[-1]
    assert (fixations.x[0], fixations.y[0]) != (fixations.x[2], fixations.y[2])


def test_density_bars_show_shares_and_the_target():
    fig = scanpath.density_bars(np.array([0.1, 0.9]), target=1)
    assert list(fig.data[0].marker.color) == [common.PATCH_COLOR, common.HIGHLIGHT]
