"""Upload checks: format from the bytes, pixel cap before decoding, a full decode, zip layout."""

import time

import pytest

from backend.errors import ApiError
from backend.uploads import inspect_archive, inspect_image
from tests.utils.uploads import header_only_png, image_bytes, image_folder_zip, truncated_png, zip_of


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"])
def test_every_accepted_format_is_recognised_from_its_bytes(fmt):
    info = inspect_image(image_bytes(fmt, (40, 30)), max_pixels=10_000)
    assert (info.width, info.height, info.format) == (40, 30, fmt)


def test_pixel_cap_is_checked_from_the_header_before_decoding():
    start = time.perf_counter()
    with pytest.raises(ApiError) as caught:
        inspect_image(header_only_png(20_000, 20_000), max_pixels=40_000_000)
    assert caught.value.status == 413 and "400.0 MP" in caught.value.message
    assert time.perf_counter() - start < 0.5


def test_pixel_cap_below_pils_own_limit_names_the_size():
    with pytest.raises(ApiError) as caught:
        inspect_image(header_only_png(5000, 4000), max_pixels=1_000_000)
    assert caught.value.status == 413 and "5000×4000" in caught.value.message


def test_truncated_image_is_refused_after_a_full_decode():
    with pytest.raises(ApiError) as caught:
        inspect_image(truncated_png(), max_pixels=10_000)
    assert caught.value.status == 422 and "truncated" in caught.value.message


@pytest.mark.parametrize(("data", "status"), [(b"", 400), (b"%PDF-1.7 not an image", 415)])
def test_empty_or_foreign_bytes_are_refused(data, status):
    with pytest.raises(ApiError) as caught:
        inspect_image(data, max_pixels=10_000)
    assert caught.value.status == status


def test_archive_reports_images_and_class_folders():
    info = inspect_archive(image_folder_zip({"circle": 2, "square": 1}), 10_000, 100_000)
    assert info.images == 3 and info.classes == ["circle", "square"]


def test_archive_without_class_folders_is_refused():
    with pytest.raises(ApiError) as caught:
        inspect_archive(zip_of({"loose.png": image_bytes()}), 10_000, 100_000)
    assert caught.value.status == 422 and "class folders" in caught.value.message


def test_archive_member_that_is_not_an_image_is_named():
    data = zip_of({"circle/0.png": image_bytes(), "circle/1.png": b"not a png"})
    with pytest.raises(ApiError) as caught:
        inspect_archive(data, 10_000, 100_000)
    assert "circle/1.png" in caught.value.message


def test_archive_member_bomb_is_refused_by_its_header():
    with pytest.raises(ApiError) as caught:
        inspect_archive(zip_of({"circle/0.png": header_only_png(20_000, 20_000)}), 40_000_000, 100_000)
    assert caught.value.status == 413
