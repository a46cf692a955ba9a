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
from PIL import Image

from vitscope.contracts.archives import MAX_ZIP_MEMBERS, class_of, image_members
from vitscope.contracts.datasets import parse_dataset_spec
from vitscope.contracts.errors import UserError
from vitscope.contracts.jobs import Inputs

MAX_PIXELS = 40_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


@dataclass
class Batch:
    """A batch: uint8 images (B, H, W, 3), labels (B,) with -1 = unknown, boxes (B, 4) with NaN = unknown,
    and the items' positions in the source (B,)."""

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    indices: np.ndarray


class ImageSource(Protocol):
    """Anything that streams batches of images at a requested size."""

    def __len__(self) -> int: ...

    def batches(self, batch_size: int, size: tuple[int, int]) -> Iterator[Batch]:
        """Yield batches of at most `batch_size` images resized to `size` (height, width)."""
        ...


class SynthSource:
    """SynthScenes images generated on the fly at the model's size."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed = n, seed

    def __len__(self) -> int:
        return self.n

    def batches(self, batch_size: int, size: tuple[int, int]) -> Iterator[Batch]:
        """Yield generated batches; labels and boxes are the generator's ground truth."""
        from vitscope.vit.data.synthscenes import SynthScenes

        scenes = SynthScenes(self.n, seed=self.seed, image_size=size)
        start = 0
        for images, labels, boxes in scenes.batches(batch_size):
            idx = np.arange(start, start + len(images))
            start += len(images)
            yield Batch(images, labels.astype(np.int64), boxes.astype(np.float32), idx)


class EncodedSource:
    """Encoded image files (uploads, zip members) with optional labels, decoded lazily."""

    def __init__(
        self, blobs: Sequence[Callable[[], bytes]], labels: Sequence[int] | None, names: Sequence[str]
    ):
        self.blobs, self.names = list(blobs), list(names)
        self.labels = list(labels) if labels is not None else [-1] * len(self.blobs)

    def __len__(self) -> int:
        return len(self.blobs)

    def batches(self, batch_size: int, size: tuple[int, int]) -> Iterator[Batch]:
        """Yield decoded, RGB-converted, resized batches; boxes are unknown (NaN)."""
        for start in range(0, len(self.blobs), batch_size):
            stop = min(start + batch_size, len(self.blobs))
            images = np.stack(
                [decode_image(self.blobs[i](), size, self.names[i]) for i in range(start, stop)]
            )
            labels = np.asarray(self.labels[start:stop], dtype=np.int64)
            boxes = np.full((stop - start, 4), np.nan, dtype=np.float32)
            yield Batch(images, labels, boxes, np.arange(start, stop))


def decode_image(data: bytes, size: tuple[int, int] | None, name: str = "image") -> np.ndarray:
    """Decode an image file to uint8 RGB (H, W, 3), resized (bilinear) to `size` (height, width) if given."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            rgb = img.convert("RGB")
    except (OSError, Image.DecompressionBombError, ValueError) as exc:
        raise UserError(f"{name}: not a readable image ({exc})") from exc
    if size is not None and rgb.size != (size[1], size[0]):
        rgb = rgb.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


def zip_folder_source(data: bytes, class_names: Sequence[str]) -> EncodedSource:
    """An ImageFolder zip (`<class>/<image>` members) as a labelled source.

    Folder names are matched to the model's class names (case-insensitive); an unknown folder
    is an error naming it and the classes available.
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
    return EncodedSource(blobs, labels, names)


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
