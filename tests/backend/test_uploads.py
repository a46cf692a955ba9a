"""Upload checks: format from the bytes, pixel cap before decoding, a full decode, zip layout."""

import time

import numpy as np
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


def exif_rotated_jpeg(orientation: int = 6) -> bytes:
    """A 60x20 JPEG (left third red) whose EXIF says: turn it `orientation` (6: 90° clockwise)."""
    from io import BytesIO

    from PIL import Image

    pixels = np.zeros((20, 60, 3), np.uint8)
    pixels[:, :20] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", exif=exif, quality=95)
    return out.getvalue()


def test_the_reported_size_is_the_upright_one_as_the_worker_decodes_it():
    from vitscope.vit.data.inputs import decode_picture

    data = exif_rotated_jpeg(6)
    info = inspect_image(data, max_pixels=10_000)
    upright = decode_picture(data)
    assert (info.width, info.height) == upright.size == (20, 60)
    # orientation 6 turns the red left third into the top third: the pixels agree with the size
    top, bottom = np.asarray(upright)[5, 10], np.asarray(upright)[55, 10]
    assert top[0] > 200 and top[1] < 60 and bottom[0] < 60


def test_the_bzip2_cpu_bomb_is_refused_by_its_directory_before_any_decompression():
    from tests.utils.uploads import bzip2_bomb

    bomb = bzip2_bomb()  # 100 members of 19.9 MB zeros each, in about 24 kB
    with pytest.raises(ApiError) as caught:
        inspect_archive(bomb, max_pixels=40_000_000, max_member_bytes=20_000_000)
    assert caught.value.status == 413 and "the limit is 1000000000" in caught.value.message


def test_a_single_bomb_member_is_refused_by_its_ratio():
    from tests.utils.uploads import bzip2_bomb
    from vitscope.contracts.archives import ArchiveBudget

    with pytest.raises(ApiError) as caught:
        inspect_archive(bzip2_bomb(members=2), 40_000_000, 20_000_000, ArchiveBudget(10**9, 200, 5))
    assert caught.value.status == 413 and "times its compressed size" in caught.value.message


def test_unpacking_stops_at_the_time_budget():
    from vitscope.contracts.archives import ArchiveBudget

    data = image_folder_zip({"circle": 3})
    with pytest.raises(ApiError) as caught:
        inspect_archive(data, 40_000_000, 20_000_000, ArchiveBudget(10**9, 200, seconds=0))
    assert caught.value.status == 413 and "took longer than 0 s" in caught.value.message


def test_a_member_that_unpacks_to_more_than_it_declares_is_refused():
    import bz2
    import zlib

    from tests.utils.uploads import raw_zip

    payload = image_bytes("PNG", (32, 32)) + b"\x00" * 5_000_000
    lying = raw_zip([("cls/a.png", bz2.compress(payload), 12, zlib.crc32(payload), 2_000)])
    with pytest.raises(ApiError) as caught:
        inspect_archive(lying, 40_000_000, 20_000_000)
    assert caught.value.status == 422 and "cannot be read" in caught.value.message
