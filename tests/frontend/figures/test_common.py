"""Figure builders of every page: small synthetic arrays in, checked figure contents out."""

from __future__ import annotations

import base64
import inspect
import io

import numpy as np
import pytest
from PIL import Image

import frontend.figures as F
from frontend.figures import cam, common, head, heads, scanpath


def test_layer_colors_are_distinct_and_stable():
    assert len(set(common.layer_colors(12))) == 12
    assert common.layer_colors(12) == common.layer_colors(12)
    assert len(common.layer_colors(1)) == 1


def test_overlay_puts_the_grid_in_patch_coordinates_over_the_image():
    image = np.zeros((64, 32, 3), dtype=np.uint8)
    grid = np.arange(8.0).reshape(4, 2)
    fig = common.overlay_figure(image, grid, 0.4, "Jet", "t", marker=(3, 1))
    picture, heat = fig.data
    assert picture.type == "image" and picture.source.startswith("data:image/png;base64,")
    assert picture.dx == pytest.approx(2 / 32) and picture.dy == pytest.approx(4 / 64)
    assert heat.opacity == 0.4
    np.testing.assert_allclose(np.asarray(heat.z), grid)
    [box] = fig.layout.shapes
    assert (box.x0, box.y0) == (0.5, 2.5)


def test_overlay_without_an_image_is_an_opaque_grid():
    fig = common.overlay_figure(None, np.ones((2, 2)), 0.3, "Viridis", "t")
    assert [t.type for t in fig.data] == ["heatmap"]
    assert fig.data[0].opacity == 1.0


def test_image_source_round_trips_the_pixels():
    image = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    uri = common.image_source(image)
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    np.testing.assert_array_equal(decoded, image)


def test_top5_bars_put_the_best_prediction_on_top():
    fig = common.top5_bars(["macaw", "bannister", "prison"], [0.6, 0.3, 0.1])
    assert list(fig.data[0].y) == ["prison", "bannister", "macaw"]


def test_graph_config_exports_through_the_modebar_in_the_chosen_format():
    config = common.graph_config("vitscope-heads", "svg")
    assert config["toImageButtonOptions"]["format"] == "svg"
    assert config["toImageButtonOptions"]["filename"] == "vitscope-heads"


def test_empty_figure_says_why():
    fig = common.empty_figure("Waiting for job abc")
    assert fig.layout.annotations[0].text == "Waiting for job abc"


def test_the_package_re_exports_every_public_builder_of_its_modules():
    for module in (common, heads, head, cam, scanpath):
        builders = [
            name
            for name, value in inspect.getmembers(module, inspect.isfunction)
            if value.__module__ == module.__name__ and not name.startswith("_")
        ]
        assert builders, module.__name__
        assert all(getattr(F, name) is getattr(module, name) for name in builders), module.__name__
