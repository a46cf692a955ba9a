"""Image sources: one image alone (`one_image`) is the image the dataset-wide stream gives at its index."""

from functools import partial

import numpy as np
import pytest

from tests.utils.uploads import image_bytes
from vitscope.contracts.errors import UserError
from vitscope.vit.data.geometry import InputGeometry
from vitscope.vit.data.inputs import Batch, EncodedSource, SynthSource, one_image


def uploads(labels=None):
    """Three PNG uploads of different sizes (width, height), labelled or not."""
    blobs = [image_bytes("PNG", size, seed=i) for i, size in enumerate([(40, 30), (32, 32), (50, 70)])]
    return EncodedSource([partial(bytes, b) for b in blobs], labels, ["a.png", "b.png", "c.png"])


def assert_same(alone: Batch, streamed: Batch, index: int) -> None:
    """`alone` (a batch of one) holds item `index` of the `streamed` batch of every image."""
    assert alone.indices.tolist() == [index] and len(alone.images) == 1
    np.testing.assert_array_equal(alone.images[0], streamed.images[index])
    for name in ("labels", "boxes", "crop_boxes", "original_sizes"):
        np.testing.assert_array_equal(getattr(alone, name)[0], getattr(streamed, name)[index], err_msg=name)


@pytest.mark.parametrize("size", [(32, 32), (48, 40)])
def test_a_synthscenes_item_is_the_one_the_stream_gives(size):
    source = SynthSource(7, seed=3)
    streamed = next(source.batches(7, size))
    for index in (0, 4, 6):
        assert_same(one_image(source, index, size), streamed, index)
    assert not np.array_equal(one_image(source, 4, size).images, one_image(SynthSource(7, 4), 4, size).images)


def test_an_upload_comes_alone_with_its_label_and_index():
    source = uploads(labels=[2, 0, 5])
    geometry = InputGeometry((32, 32), resize=(36, 36))
    streamed = next(source.batches(3, geometry))
    for index in range(3):
        assert_same(one_image(source, index, geometry), streamed, index)
    alone = one_image(source, 2, geometry)
    assert alone.labels.tolist() == [5]
    np.testing.assert_array_equal(alone.original_sizes, [[70, 50]])  # (height, width) uploaded
    assert one_image(uploads(), 1, geometry).labels.tolist() == [-1]


def test_other_sources_are_streamed_up_to_the_image():
    class Plain:
        """An `ImageSource` that is neither SynthScenes nor uploads."""

        def __init__(self, inner):
            self.inner = inner

        def __len__(self):
            return len(self.inner)

        def batches(self, batch_size, size):
            return self.inner.batches(batch_size, size)

    source = Plain(SynthSource(5, seed=1))
    assert_same(one_image(source, 3, (32, 32)), next(source.batches(5, (32, 32))), 3)


@pytest.mark.parametrize("index", [-1, 3, 100])
def test_an_image_outside_the_inputs_is_refused_naming_the_range(index):
    with pytest.raises(
        UserError, match=rf"image {index} is out of range: the inputs have 3 images \(0\.\.2\)"
    ):
        one_image(uploads(), index, (32, 32))
    with pytest.raises(UserError, match=f"image {index} is out of range"):
        one_image(SynthSource(3), index, (32, 32))
