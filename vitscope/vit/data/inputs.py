"""Image sources: what an analysis iterates over, whatever the user gave.

`open_source` turns a job's `Inputs` into an `ImageSource`: built-in SynthScenes, a list
of uploaded images (optionally labelled), or an uploaded ImageFolder zip. Every source
streams fixed-size uint8 batches at the size the model wants, so nothing holds a whole
dataset in memory.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image, ImageOps

from vitscope.contracts.archives import MAX_ZIP_MEMBERS, class_of, image_members
from vitscope.contracts.datasets import parse_dataset_spec
from vitscope.contracts.errors import UserError
from vitscope.contracts.jobs import Inputs
from vitscope.vit.data.geometry import InputGeometry, as_geometry

MAX_PIXELS = 40_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


@dataclass
class Batch:
    """A batch: uint8 images (B, H, W, 3) as the model sees them, labels (B,) with -1 = unknown, boxes
    (B, 4) with NaN = unknown, the items' positions in the source (B,), and per item the region
    (x0, y0, x1, y1) of the original picture the image shows and that picture's (height, width)."""

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    indices: np.ndarray
    crop_boxes: np.ndarray | None = None
    original_sizes: np.ndarray | None = None

    def __post_init__(self) -> None:
        n, h, w = self.images.shape[:3]
        if self.crop_boxes is None:  # generated at the model's size: the whole picture
            self.crop_boxes = np.tile(np.asarray([0, 0, w, h], np.float32), (n, 1))
        if self.original_sizes is None:
            self.original_sizes = np.tile(np.asarray([h, w], np.int64), (n, 1))


class ImageSource(Protocol):
    """Anything that streams batches of images at a requested size."""

    def __len__(self) -> int: ...

    def batches(self, batch_size: int, size: tuple[int, int] | InputGeometry) -> Iterator[Batch]:
        """Yield batches of at most `batch_size` images brought to `size` (height, width, or the model's
        resize-and-crop `InputGeometry`)."""
        ...


class SynthSource:
    """SynthScenes images generated on the fly at the model's size."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed = n, seed

    def __len__(self) -> int:
        return self.n

    def batches(self, batch_size: int, size: tuple[int, int] | InputGeometry) -> Iterator[Batch]:
        """Yield batches generated at the input size; labels and boxes are the generator's ground truth."""
        from vitscope.vit.data.synthscenes import SynthScenes

        scenes = SynthScenes(self.n, seed=self.seed, image_size=as_geometry(size).size)
        start = 0
        for images, labels, boxes in scenes.batches(batch_size):
            idx = np.arange(start, start + len(images))
            start += len(images)
            yield Batch(images, labels.astype(np.int64), boxes.astype(np.float32), idx)


class EncodedSource:
    """Encoded image files (uploads, zip members) with optional labels, decoded lazily."""

    def __init__(
        self,
        blobs: Sequence[Callable[[], bytes]],
        labels: Sequence[int] | None,
        names: Sequence[str],
        class_names: Sequence[str] = (),
    ):
        self.blobs, self.names, self.class_names = list(blobs), list(names), list(class_names)
        self.labels = list(labels) if labels is not None else [-1] * len(self.blobs)

    def __len__(self) -> int:
        return len(self.blobs)

    def batches(self, batch_size: int, size: tuple[int, int] | InputGeometry) -> Iterator[Batch]:
        """Yield decoded, RGB-converted batches brought to the input by `size`; boxes are unknown (NaN)."""
        geometry = as_geometry(size)
        for start in range(0, len(self.blobs), batch_size):
            stop = min(start + batch_size, len(self.blobs))
            pictures = [decode_picture(self.blobs[i](), self.names[i]) for i in range(start, stop)]
            images = np.stack([geometry.apply(p) for p in pictures])
            crops = np.asarray([geometry.crop_box(p.height, p.width) for p in pictures], np.float32)
            sizes = np.asarray([(p.height, p.width) for p in pictures], np.int64)
            labels = np.asarray(self.labels[start:stop], dtype=np.int64)
            boxes = np.full((stop - start, 4), np.nan, dtype=np.float32)
            yield Batch(images, labels, boxes, np.arange(start, stop), crops, sizes)


def decode_picture(data: bytes, name: str = "image") -> Image.Image:
    """Decode an image file to an RGB picture, upright (its EXIF orientation applied)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return ImageOps.exif_transpose(img).convert("RGB")
    except (OSError, Image.DecompressionBombError, ValueError) as exc:
        raise UserError(f"{name}: not a readable image ({exc})") from exc


def decode_image(data: bytes, size: tuple[int, int] | None, name: str = "image") -> np.ndarray:
    """Decode an image file to uint8 RGB (H, W, 3), resized (bilinear) to `size` (height, width) if given."""
    rgb = decode_picture(data, name)
    if size is not None and rgb.size != (size[1], size[0]):
        rgb = rgb.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


def zip_folder_source(data: bytes, class_names: Sequence[str]) -> EncodedSource:
    """An ImageFolder zip (`<class>/<image>` members) as a labelled source.

    Folder names are matched to the model's class names (case-insensitive); an unknown folder
    is an error naming it and the classes available. For a model without classes (a backbone)
    the folders are the classes, in sorted order (a probe is fitted on them).
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise UserError("the upload is not a zip archive") from exc
    members = image_members(archive)
    if not members:
        raise UserError("the zip has no images in class folders (expected <class>/<image>.png)")
    if len(members) > MAX_ZIP_MEMBERS:
        raise UserError(f"the zip has {len(members)} images; at most {MAX_ZIP_MEMBERS} are analysed")
    if not class_names:
        class_names = sorted({class_of(member) for member in members})
    lookup = {name.lower(): i for i, name in enumerate(class_names)}
    labels, names, blobs = [], [], []
    for member in members:
        folder = class_of(member)
        if folder.lower() not in lookup:
            raise UserError(
                f"zip folder {folder!r} is not a class of the model (classes: {', '.join(class_names)})"
            )
        labels.append(lookup[folder.lower()])
        names.append(member.filename)
        blobs.append(lambda m=member: archive.read(m))
    return EncodedSource(blobs, labels, names, class_names)


def open_source(inputs: Inputs, fetch: Callable[[str], bytes], class_names: Sequence[str]) -> ImageSource:
    """The `ImageSource` for a job's inputs; `fetch(id)` returns an uploaded blob's bytes."""
    if inputs.dataset is not None:
        spec = parse_dataset_spec(inputs.dataset)
        if spec.name != "synthscenes":
            raise UserError(f"{spec.name} scenes are for the scanpath analysis, not for image analyses")
        return SynthSource(spec.n, spec.seed)
    if inputs.images is not None:
        blobs = [lambda i=image_id: fetch(i) for image_id in inputs.images]
        return EncodedSource(blobs, inputs.labels, list(inputs.images))
    assert inputs.zip is not None
    return zip_folder_source(fetch(inputs.zip), class_names)


def start_rendering(inputs: Inputs) -> None:
    """Start the helper processes that rendering `inputs` will use, if any (a SynthScenes set of 128 images
    or more: `synthscenes.helpers_for`), so that their start-up overlaps what the caller
    does next (`vitscope run` imports torch and transformers, a worker loads the model)."""
    if inputs.dataset is None:
        return
    spec = parse_dataset_spec(inputs.dataset)
    if spec.name == "synthscenes":
        from vitscope.vit.data.synthscenes import helpers_for

        helpers_for(spec.n)  # started (or found running) now; the set's batches use them later


def one_image(source: ImageSource, index: int, size: tuple[int, int] | InputGeometry) -> Batch:
    """Image `index` of `source` alone, as a batch of one brought to `size` (its `indices` say `index`).

    Decodes or renders that image only (a SynthScenes item from its seed and index, one upload or zip
    member); `UserError` when the source has no such image.
    """
    if not 0 <= index < len(source):
        raise UserError(
            f"image {index} is out of range: the inputs have {len(source)} images (0..{len(source) - 1})"
        )
    if isinstance(source, SynthSource):
        from vitscope.vit.data.synthscenes import SynthScenes

        item = SynthScenes(source.n, seed=source.seed, image_size=as_geometry(size).size)[index]
        boxes = np.asarray([item.box], np.float32)
        return Batch(item.image[None], np.asarray([item.label], np.int64), boxes, np.asarray([index]))
    if isinstance(source, EncodedSource):
        alone = EncodedSource(
            [source.blobs[index]], [source.labels[index]], [source.names[index]], source.class_names
        )
        batch = next(alone.batches(1, size))
        batch.indices = np.asarray([index])
        return batch
    for batch in source.batches(1, size):  # any other source: stream up to the image
        if int(batch.indices[0]) == index:
            return batch
    raise UserError(f"image {index} is not in the inputs")
