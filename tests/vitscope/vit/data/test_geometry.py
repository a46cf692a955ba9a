"""The model's own resize and crop, and the way back to the uploaded picture."""

import numpy as np
import pytest
from PIL import Image

from vitscope.vit.data.geometry import InputGeometry, as_geometry

DINO = {
    "do_resize": True,
    "size": {"shortest_edge": 256},
    "do_center_crop": True,
    "crop_size": {"height": 224, "width": 224},
    "resample": 3,
}
VIT = {"do_resize": True, "size": {"height": 224, "width": 224}, "resample": 2}
DEIT = {**VIT, "size": {"height": 256, "width": 256}, "do_center_crop": True, "crop_size": DINO["crop_size"]}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (DINO, InputGeometry((224, 224), 256, 3)),
        (VIT, InputGeometry((224, 224), None, 2)),
        (DEIT, InputGeometry((224, 224), None, 2, (256, 256))),
        ({}, InputGeometry((96, 96), None, 2)),
    ],
    ids=["shortest-edge+crop", "plain-resize", "fixed-resize+crop", "no-size"],
)
def test_geometry_is_read_from_the_image_processor(config, expected):
    assert InputGeometry.from_processor(config, (96, 96)) == expected


def test_shortest_edge_resize_keeps_the_aspect_and_crops_the_centre():
    picture = np.zeros((300, 600, 3), np.uint8)
    picture[:, 300:] = 255  # right half white
    out = InputGeometry((224, 224), 256).apply(Image.fromarray(picture))
    assert out.shape == (224, 224, 3)
    # 300x600 -> 256x512, crop columns 144..367: the white edge (column 256) lands at 112
    assert out[100, 100].max() == 0 and out[100, 124].min() == 255


def test_crop_box_maps_the_input_back_onto_the_picture():
    geometry = InputGeometry((224, 224), 256)
    x0, y0, x1, y1 = geometry.crop_box(300, 600)
    assert (x0, x1) == pytest.approx((144 * 600 / 512, 368 * 600 / 512))
    assert (y0, y1) == pytest.approx((16 * 300 / 256, 240 * 300 / 256))
    assert InputGeometry((224, 224)).crop_box(300, 600) == (0.0, 0.0, 600.0, 300.0)


def test_scaled_keeps_the_crop_margin():
    assert InputGeometry((224, 224), 256).scaled(448) == InputGeometry((448, 448), 512)
    assert InputGeometry((224, 224)).scaled(112) == InputGeometry((112, 112))


def test_a_plain_size_means_a_plain_resize():
    assert as_geometry((32, 48)) == InputGeometry((32, 48))
