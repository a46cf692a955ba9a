"""Figure builders of /cam: small synthetic arrays in, checked figure contents out."""

from __future__ import annotations

import numpy as np

from frontend.figures import cam


def test_rank_corr_line_names_real_layers():
    fig = cam.rank_corr_line(np.array([0.1, 0.2, 0.05]), selected=1, layer_numbers=[2, 5, 11])
    assert list(fig.data[0].x) == [2, 5, 11]
    assert fig.data[-1].x == (5,)


def test_placed_overlay_puts_the_map_in_its_crop_box_in_original_picture_pixels():
    thumbnail = np.zeros((30, 40, 3), np.uint8)  # a quarter-size copy of a 120 x 160 picture
    placement = cam.Placement((120, 160), (20.0, 0.0, 140.0, 120.0))
    grid = np.arange(6.0).reshape(2, 3) / 5
    fig = cam.placed_overlay_figure(thumbnail, placement, grid, 0.4, "Jet", "t", zrange=(0, 1))
    picture, heat = fig.data
    assert (picture.dx, picture.dy, picture.x0, picture.y0) == (4, 4, 2, 2)
    np.testing.assert_allclose(heat.x, [40, 80, 120])  # 3 cells of 40 px tiling x 20..140
    np.testing.assert_allclose(heat.y, [30, 90])  # 2 cells of 60 px tiling y 0..120
    assert heat.opacity == 0.4 and heat.zmin == 0 and heat.zmax == 1
    assert tuple(fig.layout.xaxis.range) == (0, 160) and tuple(fig.layout.yaxis.range) == (120, 0)
    *veils, outline = fig.layout.shapes
    assert [(v.x0, v.x1) for v in veils] == [(0, 20), (140, 160)]  # dimmed left and right of the box
    assert (outline.x0, outline.y0, outline.x1, outline.y1) == (20, 0, 140, 120)


def test_placed_overlay_without_a_picture_draws_the_map_opaque():
    placement = cam.Placement((10, 10), (0.0, 0.0, 10.0, 10.0))
    fig = cam.placed_overlay_figure(None, placement, np.ones((2, 2)), 0.3, "Jet", "t")
    [heat] = fig.data
    assert heat.opacity == 1 and len(fig.layout.shapes) == 1  # no veil: the box is the whole picture
