"""Reading a job's pictures and names: upright pictures, class names from a classifier or a probe."""

from __future__ import annotations

import io

from PIL import Image

from frontend.results import class_name, decode_image


def test_a_picture_is_decoded_upright_as_the_analyses_read_it():
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown rotated by 90 degrees
    buffer = io.BytesIO()
    Image.new("RGB", (40, 20)).save(buffer, format="JPEG", exif=exif)
    assert decode_image(buffer.getvalue()).shape == (40, 20, 3)


def test_class_names_come_from_the_classifier_else_the_probe():
    probe = {"probe": {"classes": ["cat", "dog"]}, "label_names": ["x", "y"]}
    assert class_name({**probe, "model": {"labels": []}}, 1) == "dog"
    assert class_name({**probe, "model": {"labels": ["tench", "goldfish"]}}, 1) == "goldfish"
    assert class_name({"label_names": ["x", "y"]}, 0) == "x" and class_name({}, 3) == "class 3"
