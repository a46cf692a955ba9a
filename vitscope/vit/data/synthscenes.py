"""SynthScenes: procedural, seed-deterministic images of shapes on clutter, numpy only.

Two products share one renderer:

- the labelled classification set (`SynthScenes`, dataset spec `synthscenes:N[:seed=S]`):
  one shape over a cluttered background per image, label = the shape's category, with the
  tight box of its drawn pixels;
- visual-search scenes (`search_scene`, `SynthSearch`, spec `synthsearch:N[...]`): a shelf
  grid or a free layout of many shapes, one of them the target, with distractors graded in
  similarity to it, for the scanpath work.

Every image depends only on (seed, index): it is drawn from its own `default_rng` stream, so
item i has the same bytes alone, in a batch, in any order or process. The category is the
shape alone; colour, texture, size, aspect, a small rotation and position are nuisances, so
a classifier has to learn shape.

Speed comes from caches built once per process from fixed seeds, not from the per-image
stream: per (category, rotation) a high-resolution coverage mask that is resampled to the
object's size by index gathering, periodic noise tiles for backgrounds, a bank of distractor
stroke stencils and texture tiles. An image is then a few array operations on small windows.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from vitscope.contracts.datasets import DEFAULT_LAYOUT, Layout, parse_layout
from vitscope.contracts.errors import UserError
from vitscope.vit.data.scenes import Box, LabelledImage, SceneObject, SearchScene

if TYPE_CHECKING:
    from vitscope.vit.data.render_pool import RenderPool

CATEGORIES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "cross",
    "star",
    "ring",
    "diamond",
    "hexagon",
    "crescent",
    "arrow",
    "letter-T",
    "letter-L",
    "heart",
    "frame",
)
"""Object categories, one shape each; `SceneObject.category` and labels index this."""

TEXTURES: tuple[str, ...] = ("solid", "stripes", "dots", "checks")
"""Fill textures; `SceneObject.texture` indexes this."""

SEARCH_PALETTE: tuple[tuple[int, int, int], ...] = (
    (220, 40, 40),  # red
    (40, 170, 60),  # green
    (40, 80, 220),  # blue
    (240, 210, 40),  # yellow
    (200, 60, 200),  # magenta
    (40, 200, 210),  # cyan
    (240, 130, 30),  # orange
    (120, 60, 180),  # purple
    (245, 245, 245),  # white
    (25, 25, 25),  # black
)
"""Search scenes draw colours from this palette, so "same colour as the target" is exact."""

GRID_CELL_PX = 32
FREE_SIZE_PX = (256, 256)

# Rotations stay within ±15° so that no category turns into another (square vs diamond,
# cross vs an X are 45° apart).
_ROTATIONS_DEG = (-15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0)
_MASK_RES = 160  # pixels of the cached coverage canvas; objects up to ~120 px stay crisp
_MASK_EXTENT = 1.3  # the canvas spans [-1.3, 1.3]² of shape coordinates
_ALPHA_MIN = 0.2  # coverage below this is dropped, so the box holds only visible pixels
_LABELLED_SIDE = (0.30, 0.60)  # longer side of the labelled object / shorter image side
_MIN_CONTRAST = 110.0  # RGB distance of a labelled object's colour from its local background
_BANK_SEED = 20240611  # the caches are fixed: they must not depend on any image's stream
_MIN_LABELLED_SIDE_PX = 16  # tiny test models run at 32 px or less
_MIN_CELL_PX = 12


# ---------------------------------------------------------------- shapes


def _heart(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    x, y = 1.15 * u, 0.15 - 1.2 * v  # the classic implicit heart, y up
    return (x * x + y * y - 1) ** 3 - x * x * y**3 <= 0


def _star(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    sector = 2 * np.pi / 5
    rho, theta = np.hypot(u, v), np.arctan2(u, -v)  # theta from "up": one tip points up
    phi = np.abs((theta + sector / 2) % sector - sector / 2)  # fold onto one half-spike
    px, py = rho * np.cos(phi), rho * np.sin(phi)
    bx, by = 0.42 * np.cos(sector / 2), 0.42 * np.sin(sector / 2)  # inner corner; tip (1, 0)
    return (bx - 1) * py - by * (px - 1) >= 0  # on the origin's side of the tip-corner edge


def _arrow(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    shaft = (np.abs(v) <= 0.22) & (u >= -1) & (u <= 0.2)
    head = (u >= 0.1) & (u <= 1) & (np.abs(v) <= 0.75 * (1 - u) / 0.9)
    return shaft | head


_Shape = Callable[[np.ndarray, np.ndarray], np.ndarray]
_SHAPES: dict[str, _Shape] = {
    "circle": lambda u, v: u * u + v * v <= 1,
    "square": lambda u, v: np.maximum(np.abs(u), np.abs(v)) <= 0.8,
    "triangle": lambda u, v: (v <= 0.7) & (np.abs(u) <= 0.92 * (v + 0.9) / 1.6),
    "cross": lambda u, v: (
        ((np.abs(u) <= 0.3) & (np.abs(v) <= 0.9)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 0.9))
    ),
    "star": _star,
    "ring": lambda u, v: (u * u + v * v <= 1) & (u * u + v * v >= 0.55**2),
    "diamond": lambda u, v: np.abs(u) / 0.75 + np.abs(v) <= 1,
    "hexagon": lambda u, v: (np.abs(v) <= 0.866) & (0.866 * np.abs(u) + 0.5 * np.abs(v) <= 0.866),
    "crescent": lambda u, v: (u * u + v * v <= 1) & ((u - 0.45) ** 2 + v * v >= 0.8**2),
    "arrow": _arrow,
    "letter-T": lambda u, v: (
        ((v <= -0.5) & (v >= -0.9) & (np.abs(u) <= 0.85)) | ((np.abs(u) <= 0.2) & (v >= -0.5) & (v <= 0.9))
    ),
    "letter-L": lambda u, v: (
        ((u >= -0.7) & (u <= -0.3) & (np.abs(v) <= 0.9))
        | ((v >= 0.5) & (v <= 0.9) & (u >= -0.7) & (u <= 0.6))
    ),
    "heart": _heart,
    "frame": lambda u, v: (
        (np.maximum(np.abs(u), np.abs(v)) <= 0.8) & (np.maximum(np.abs(u), np.abs(v)) >= 0.5)
    ),
}
assert tuple(_SHAPES) == CATEGORIES


def _tight(alpha: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Crop `alpha` (h, w) to its nonzero pixels; returns (crop, row offset, col offset)."""
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    return alpha[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], int(rows[0]), int(cols[0])


@functools.cache
def _shape_coverage(category: int, rotation: int) -> np.ndarray:
    """Coverage in 0..1 of one shape at one cached rotation, tight: float32 (h, w), h, w ≲ 160."""
    n = 2 * _MASK_RES  # 2x2 supersampling gives fractional coverage at the edges
    t = ((np.arange(n) + 0.5) / n * 2 - 1) * _MASK_EXTENT
    y, x = np.meshgrid(t, t, indexing="ij")
    a = np.deg2rad(_ROTATIONS_DEG[rotation])
    # the shape rotated by a is the upright shape evaluated at coordinates rotated by -a
    u, v = x * np.cos(a) + y * np.sin(a), -x * np.sin(a) + y * np.cos(a)
    inside = _SHAPES[CATEGORIES[category]](u, v).astype(np.float32)
    coverage = inside.reshape(_MASK_RES, 2, _MASK_RES, 2).mean(axis=(1, 3))
    coverage = _tight(coverage)[0].copy()
    coverage.flags.writeable = False
    return coverage


def _shape_alpha(
    category: int, rotation: int, side: float, aspect: float, max_hw: tuple[int, int]
) -> np.ndarray:
    """The object's alpha, tight: float32 (h, w) with max(h, w) ≈ side, stretched by `aspect`."""
    cov = _shape_coverage(category, rotation)
    ch, cw = cov.shape
    scale = side / max(ch, cw)
    h, w = ch * scale * aspect, cw * scale / aspect
    fit = min(1.0, max_hw[0] / h, max_hw[1] / w)  # never larger than the room it gets
    h, w = max(3, int(h * fit)), max(3, int(w * fit))
    # nearest samples at twice the size, averaged 2x2: a cheap area filter
    rows = ((np.arange(2 * h) + 0.5) * (ch / (2 * h))).astype(np.intp)
    cols = ((np.arange(2 * w) + 0.5) * (cw / (2 * w))).astype(np.intp)
    g = cov[rows[:, None], cols]
    alpha = g[0::2, 0::2] + g[1::2, 0::2] + g[0::2, 1::2] + g[1::2, 1::2]
    alpha *= 0.25
    alpha[alpha < _ALPHA_MIN] = 0
    return _tight(alpha)[0]


# ---------------------------------------------------------------- cached banks


@functools.cache
def _noise_tiles() -> np.ndarray:
    """Periodic low-frequency colour noise plus fine grain: float32 (8, 256, 256, 3), unit std."""
    rng = np.random.default_rng([_BANK_SEED, 1])
    k, t = 8, 256
    radius = np.hypot(np.fft.fftfreq(t)[:, None], np.fft.rfftfreq(t)[None, :])
    tiles = np.empty((k, t, t, 3), np.float32)
    for i in range(k):
        cutoff = 0.008 + 0.03 * rng.random()  # cycles per pixel: blotches of ~30..120 px
        white = rng.standard_normal((4, t, t))
        smooth = np.fft.irfft2(np.fft.rfft2(white) * np.exp(-((radius / cutoff) ** 2)), s=(t, t))
        smooth /= smooth.std(axis=(1, 2), keepdims=True)
        # a shared luminance-like channel keeps the blotches from looking like rainbow noise
        colour = 0.7 * smooth[:1] + 0.7 * smooth[1:] + 0.12 * rng.standard_normal((3, t, t))
        tiles[i] = colour.transpose(1, 2, 0)
    tiles.flags.writeable = False
    return tiles


def _polyline_alpha(points: np.ndarray, thickness: float) -> np.ndarray:
    """Anti-aliased stroke along `points` (k, 2) as (y, x): float32 (h, w) alpha, tight."""
    pad = thickness + 2
    lo = np.floor(points.min(axis=0) - pad)
    pts = points - lo
    h, w = (np.ceil(pts.max(axis=0) + pad)).astype(int)
    y, x = np.mgrid[0:h, 0:w] + 0.5
    dist = np.full((h, w), np.inf)
    for (ay, ax), (by, bx) in itertools.pairwise(pts):
        dy, dx = by - ay, bx - ax
        t = np.clip(((y - ay) * dy + (x - ax) * dx) / max(dy * dy + dx * dx, 1e-9), 0, 1)
        dist = np.minimum(dist, np.hypot(y - ay - t * dy, x - ax - t * dx))
    alpha = np.clip(thickness / 2 + 0.5 - dist, 0, 1).astype(np.float32)
    return _tight(alpha)[0]


def _blob_alpha(rng: np.random.Generator) -> np.ndarray:
    """A small lumpy blob (no category looks like it): float32 (h, w) alpha, tight."""
    r0 = 4 + 6 * rng.random()
    k = np.arange(2, 5)[:, None]
    amp, phase = 0.12 + 0.15 * rng.random((3, 1)), 2 * np.pi * rng.random((3, 1))
    n = int(2 * r0 * 1.6) + 4
    y, x = np.mgrid[0:n, 0:n] + 0.5 - n / 2
    theta = np.arctan2(y, x).ravel()
    radius = r0 * (1 + (amp * np.cos(k * theta + phase)).sum(axis=0)).reshape(n, n)
    alpha = np.clip(radius - np.hypot(y, x) + 0.5, 0, 1).astype(np.float32)
    return _tight(alpha)[0]


def _stroke_points(rng: np.random.Generator, kind: int) -> np.ndarray:
    """Vertices (k, 2) of a distractor stroke: a line, an open arc, a squiggle or a zigzag."""
    length = 15 + 45 * rng.random()
    if kind == 0:
        a = np.pi * rng.random()
        return np.array([[0.0, 0.0], [length * np.sin(a), length * np.cos(a)]])
    if kind == 1:  # an arc well short of a circle, so it reads as neither ring nor crescent
        r, start = length / 2, 2 * np.pi * rng.random()
        arc = start + np.linspace(0, (0.25 + 0.45 * rng.random()) * 2 * np.pi / 1.6, 12)
        return np.stack([r * np.sin(arc), r * np.cos(arc)], axis=1)
    if kind == 2:
        s = np.linspace(0, length, 20)
        wave = (3 + 4 * rng.random()) * np.sin(s / (3 + 4 * rng.random()))
        a = np.pi * rng.random()
        return np.stack([s * np.sin(a) + wave * np.cos(a), s * np.cos(a) - wave * np.sin(a)], axis=1)
    return rng.random((3 + int(3 * rng.random()), 2)) * length


@functools.cache
def _stroke_bank() -> tuple[np.ndarray, ...]:
    """Distractor stencils in pixel units: 96 float32 (h, w) alphas (strokes and blobs)."""
    rng = np.random.default_rng([_BANK_SEED, 2])
    bank = []
    for i in range(96):
        if i % 5 == 4:
            bank.append(_blob_alpha(rng))
        else:
            bank.append(_polyline_alpha(_stroke_points(rng, i % 5), 1 + 1.8 * rng.random()))
    return tuple(bank)


@functools.cache
def _pattern_tiles() -> tuple[tuple[np.ndarray, ...], ...]:
    """Per texture, its variants as float32 (256, 256) in 0..1 (1 = second colour)."""
    y, x = np.mgrid[0:256, 0:256].astype(np.float32) + 0.5
    stripes = []
    for angle in (0, 45, 90, 135):
        for period in (4.0, 6.0):
            a = np.deg2rad(angle)
            phase = (x * np.cos(a) + y * np.sin(a)) / period
            stripes.append(((phase % 1) < 0.5).astype(np.float32))
    dots = [(np.hypot((y % s) - s / 2, (x % s) - s / 2) <= s / 3.5).astype(np.float32) for s in (5.0, 7.0)]
    checks = [(((y // s) + (x // s)) % 2).astype(np.float32) for s in (3.0, 5.0)]
    solid = [np.zeros((256, 256), np.float32)]
    return tuple(tuple(v) for v in (solid, stripes, dots, checks))


@functools.cache
def _ramps(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear ramps in -0.5..0.5 for background gradients: float32 (h, 1, 1) and (1, w, 1)."""
    ry = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None, None]
    rx = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :, None]
    return ry, rx


def _wrap_crop(tile: np.ndarray, fy: float, fx: float, h: int, w: int) -> np.ndarray:
    """An (h, w, ...) window of `tile` at fractional offsets (fy, fx), wrapping if it is too small."""
    th, tw = tile.shape[:2]
    if h <= th and w <= tw:
        y, x = int(fy * (th - h + 1)), int(fx * (tw - w + 1))
        return tile[y : y + h, x : x + w]
    rows = (int(fy * th) + np.arange(h)) % th
    cols = (int(fx * tw) + np.arange(w)) % tw
    return tile[rows[:, None], cols]


# ---------------------------------------------------------------- painting


class _Backdrop(NamedTuple):
    """How loud a background is: grey level range, tint, gradient span, noise amplitude range."""

    grey: tuple[float, float]
    tint: float
    gradient: float
    noise: tuple[float, float]


# Labelled images get loud, colourful clutter; search scenes a quiet near-grey one, because
# their fixed palette must stand out everywhere (a cyan target on a cyan wash is unfindable).
_LABELLED_BACKDROP = _Backdrop(grey=(60.0, 195.0), tint=80.0, gradient=140.0, noise=(12.0, 40.0))
_SEARCH_BACKDROP = _Backdrop(grey=(105.0, 150.0), tint=12.0, gradient=30.0, noise=(5.0, 12.0))


def _background(rng: np.random.Generator, hw: tuple[int, int], style: _Backdrop) -> np.ndarray:
    """A colour gradient plus cropped noise: float32 (H, W, 3), roughly 0..255."""
    h, w = hw
    u = rng.random(5)
    tiles = _noise_tiles()
    noise = _wrap_crop(tiles[int(u[0] * len(tiles))], u[1], u[2], h, w)
    grey = style.grey[0] + (style.grey[1] - style.grey[0]) * u[3]
    base = (grey + style.tint * (2 * rng.random(3) - 1)).astype(np.float32)
    grad = ((rng.random((2, 3)) - 0.5) * style.gradient).astype(np.float32)
    ry, rx = _ramps(h, w)
    img = noise * np.float32(style.noise[0] + (style.noise[1] - style.noise[0]) * u[4])
    img += ry * grad[0] + base
    img += rx * grad[1]
    return img


def _blend(img: np.ndarray, alpha: np.ndarray, y: int, x: int, fg: np.ndarray) -> None:
    """Composite `fg` ((3,) or (h, w, 3)) through `alpha` (h, w) at (y, x), clipped to the image."""
    h, w = alpha.shape
    y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + h, img.shape[0]), min(x + w, img.shape[1])
    if y0 >= y1 or x0 >= x1:
        return
    a = alpha[y0 - y : y1 - y, x0 - x : x1 - x, None]
    if fg.ndim == 3:
        fg = fg[y0 - y : y1 - y, x0 - x : x1 - x]
    win = img[y0:y1, x0:x1]
    win += a * (fg - win)


def _scatter_strokes(rng: np.random.Generator, img: np.ndarray, count: int) -> None:
    """Draw `count` random distractor stencils on `img` (H, W, 3), some cut by the border."""
    bank = _stroke_bank()
    height, width = img.shape[:2]
    for row in rng.random((count, 6)).astype(np.float32):
        alpha = bank[int(row[0] * len(bank))]
        h, w = alpha.shape
        y, x = int(row[1] * height) - h // 2, int(row[2] * width) - w // 2
        colour = rng.random(3).astype(np.float32) * 255
        _blend(img, alpha * (0.4 + 0.5 * row[3]), y, x, colour)


def _luma(rgb: np.ndarray) -> float:
    return float(rgb[0] * 0.299 + rgb[1] * 0.587 + rgb[2] * 0.114)


def _fill(
    colour: np.ndarray, texture: int, shape: tuple[int, int], bg_mean: np.ndarray, u: np.ndarray
) -> np.ndarray:
    """The object's pixels before masking: float32 (3,) if solid, else (h, w, 3).

    A texture's second colour is the object colour pushed towards white or black, whichever
    is farther from the background, so texture never erodes the object's contrast.
    """
    if texture == 0:
        return colour
    variants = _pattern_tiles()[texture]
    pattern = _wrap_crop(variants[int(u[0] * len(variants))], u[1], u[2], *shape)
    extreme = 255.0 if _luma(colour) >= _luma(bg_mean) else 0.0
    second = colour + np.float32(0.45) * (np.float32(extreme) - colour)
    return colour + pattern[:, :, None] * (second - colour)


def _paint_object(
    img: np.ndarray, alpha: np.ndarray, y: int, x: int, colour: np.ndarray, texture: int, u: np.ndarray
) -> Box:
    """Draw one object (alpha tight, fully inside) at (y, x); returns its box (x0, y0, x1, y1)."""
    h, w = alpha.shape
    bg_mean = img[y : y + h, x : x + w].mean(axis=(0, 1))
    _blend(img, alpha, y, x, _fill(colour, texture, (h, w), bg_mean, u))
    return (float(x), float(y), float(x + w), float(y + h))


def _contrast_colour(rng: np.random.Generator, bg_mean: np.ndarray) -> np.ndarray:
    """A random colour at least _MIN_CONTRAST from `bg_mean` when one of 8 draws is: float32 (3,)."""
    candidates = np.round(rng.random((8, 3)) * 255).astype(np.float32)
    dist = np.sqrt(((candidates - bg_mean) ** 2).sum(axis=1))
    ok = np.flatnonzero(dist >= _MIN_CONTRAST)
    return candidates[ok[0] if ok.size else int(np.argmax(dist))]


def _to_uint8(img: np.ndarray) -> np.ndarray:
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8)


# ---------------------------------------------------------------- labelled set


class _Rendered(NamedTuple):
    image: np.ndarray  # uint8 (H, W, 3)
    label: int
    box: Box
    alpha: np.ndarray  # float32 (h, w), the object's alpha inside its box


def _image_hw(image_size: int | tuple[int, int], minimum: int) -> tuple[int, int]:
    """Normalize an image size to (H, W), raising UserError below `minimum` pixels."""
    hw = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(hw) != 2 or not all(isinstance(s, int | np.integer) and s >= minimum for s in hw):
        raise UserError(f"image size {image_size!r} must be an int or (H, W) of ints >= {minimum}")
    return int(hw[0]), int(hw[1])


def _render_labelled(seed: int, index: int, hw: tuple[int, int]) -> _Rendered:
    """Image (seed, index) of the labelled set, with its label, box and object alpha."""
    rng = np.random.default_rng([seed, index])
    img = _background(rng, hw, _LABELLED_BACKDROP)
    _scatter_strokes(rng, img, 3 + int(6 * rng.random() * hw[0] * hw[1] / 96**2))
    u = rng.random(10)
    label, rotation = int(u[0] * len(CATEGORIES)), int(u[1] * len(_ROTATIONS_DEG))
    side = (_LABELLED_SIDE[0] + (_LABELLED_SIDE[1] - _LABELLED_SIDE[0]) * u[2]) * min(hw)
    alpha = _shape_alpha(label, rotation, side, 2 ** ((u[3] - 0.5) * 0.5), hw)
    h, w = alpha.shape
    y, x = int(u[4] * (hw[0] - h + 1)), int(u[5] * (hw[1] - w + 1))
    colour = _contrast_colour(rng, img[y : y + h, x : x + w].mean(axis=(0, 1)))
    texture = 0 if u[6] < 0.4 else 1 + int((u[6] - 0.4) / 0.6 * (len(TEXTURES) - 1))
    box = _paint_object(img, alpha, y, x, colour, texture, u[7:])
    return _Rendered(_to_uint8(img), label, box, alpha)


class SynthScenes:
    """The labelled classification set: item i is one shape of category `label` over clutter.

    Items are rendered on demand from (seed, index), never stored.
    """

    def __init__(self, n: int, seed: int = 0, image_size: int | tuple[int, int] = 96) -> None:
        if n < 1 or seed < 0:
            raise UserError(f"SynthScenes needs n >= 1 and seed >= 0, got n={n}, seed={seed}")
        self.n, self.seed = n, seed
        self.image_size = _image_hw(image_size, _MIN_LABELLED_SIDE_PX)

    def __len__(self) -> int:
        """Number of images n."""
        return self.n

    def _index(self, i: int) -> int:
        if not -self.n <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} images")
        return i % self.n

    def __getitem__(self, i: int) -> LabelledImage:
        """Image i: `LabelledImage` with uint8 (H, W, 3) image, its label and tight box."""
        r = _render_labelled(self.seed, self._index(i), self.image_size)
        return LabelledImage(image=r.image, label=r.label, box=r.box)

    def __iter__(self) -> Iterator[LabelledImage]:
        """Yields the n items in order."""
        return (self[i] for i in range(self.n))

    def object_mask(self, i: int) -> np.ndarray:
        """The pixels of item i's object (for pointing-game checks): bool (H, W)."""
        r = _render_labelled(self.seed, self._index(i), self.image_size)
        mask = np.zeros(self.image_size, bool)
        x0, y0, x1, y1 = (int(c) for c in r.box)
        mask[y0:y1, x0:x1] = r.alpha > 0
        return mask

    def batches(
        self, batch_size: int, workers: int | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Streams the set in order: (images uint8 (B, H, W, 3), labels int64 (B,), boxes float32 (B, 4)).

        The last batch may be smaller; boxes are x0, y0, x1, y1 with x1, y1 exclusive. With
        `workers` > 1 the next batches are rendered by helper processes (`vitscope.vit.data.render_pool`,
        started with that many the first time) while the caller works on this one; by default by the
        helpers already running, else as `render_workers(n)` says. The bytes are the same (every image is
        its own stream).
        """
        if batch_size < 1:
            raise UserError(f"batch size must be >= 1, got {batch_size}")
        spans = [(start, min(batch_size, self.n - start)) for start in range(0, self.n, batch_size)]
        pool = helpers_for(self.n, workers)
        if pool is None:
            for start, count in spans:
                yield render_range(self.seed, start, count, self.image_size)
            return
        pending: deque[tuple[Batch3, list[Future]]] = deque()
        try:
            for start, count in spans:
                batch = _empty_batch(count, self.image_size)
                parts = _split(start, count, pool.size)
                pieces = [pool.submit(batch, s - start, self.seed, s, c) for s, c in parts]
                pending.append((batch, pieces))
                if len(pending) > _PREFETCH:
                    yield _done(*pending.popleft())
            while pending:
                yield _done(*pending.popleft())
        finally:  # a caller that stops early (a cancelled job) leaves no pieces queued for nothing
            for _, pieces in pending:
                for piece in pieces:
                    piece.cancel()


_PREFETCH = 2
"""Batches rendered ahead of the one the caller works on."""


def helpers_for(n: int, workers: int | None = None) -> RenderPool | None:
    """The helpers that render n images, None to render them in the caller: with `workers` given, a pool
    of that many (None for 1 or fewer); by default the process's pool when it already runs (a small set
    too: its start-up is paid), else one of `render_workers(n)` helpers where that is worth it."""
    from vitscope.vit.data import render_pool

    if workers is None:
        running = render_pool.running_pool()
        if running is not None:
            return running
        workers = render_workers(n)
    return render_pool.shared_pool(workers) if workers > 1 else None


def render_workers(n: int) -> int:
    """Helper processes for rendering n images (`vitscope.vit.data.render_pool`): 1 (render in the
    caller) for sets under 128 images, where starting helpers costs more than it saves; else
    `$VITSCOPE_RENDER_HELPERS` where it is set (0 or 1: in the caller), or cores - 2 up to 8 (1 below
    4 cores). `UserError` for a setting that is not a whole number."""
    if n < 128:
        return 1
    setting = os.environ.get("VITSCOPE_RENDER_HELPERS", "").strip()
    if setting:
        if not setting.isdigit():
            raise UserError(
                f"VITSCOPE_RENDER_HELPERS must be a whole number of helper processes (0: render in the "
                f"analysis' own process), got {setting!r}"
            )
        return max(1, int(setting))
    cores = os.cpu_count() or 1
    return 1 if cores < 4 else min(8, cores - 2)


Batch3 = tuple[np.ndarray, np.ndarray, np.ndarray]
"""One rendered batch: images uint8 (B, H, W, 3), labels int64 (B,), boxes float32 (B, 4)."""


def render_range(seed: int, start: int, count: int, hw: tuple[int, int]) -> Batch3:
    """Images start..start+count-1 of the labelled set: (images (B, H, W, 3), labels (B,), boxes (B, 4))."""
    batch = _empty_batch(count, hw)
    render_into(batch, 0, seed, start, count)
    return batch


def _empty_batch(count: int, hw: tuple[int, int]) -> Batch3:
    return np.empty((count, *hw, 3), np.uint8), np.empty(count, np.int64), np.empty((count, 4), np.float32)


def render_into(batch: Batch3, at: int, seed: int, start: int, count: int) -> None:
    """Render images start..start+count-1 into rows at..at+count-1 of `batch`."""
    images, labels, boxes = batch
    hw = images.shape[1:3]
    for j in range(count):
        r = _render_labelled(seed, start + j, hw)
        images[at + j], labels[at + j], boxes[at + j] = r.image, r.label, r.box


def warm_caches() -> None:
    """Build the per-process caches every image draws from (shape masks, tiles, stroke bank) now."""
    for c in range(len(CATEGORIES)):
        for r in range(len(_ROTATIONS_DEG)):
            _shape_coverage(c, r)
    _noise_tiles(), _stroke_bank(), _pattern_tiles()


def _split(start: int, count: int, parts: int) -> list[tuple[int, int]]:
    """(start, count) of up to `parts` contiguous pieces of one batch."""
    step = -(-count // parts)
    return [(s, min(step, start + count - s)) for s in range(start, start + count, step)]


def _done(batch: Batch3, pieces: list[Future]) -> Batch3:
    """`batch` once every piece rendering into it has finished (a piece's error is raised here)."""
    for piece in pieces:
        piece.result()
    return batch


def throughput(n: int = 2000, image_size: int | tuple[int, int] = 96) -> float:
    """Images per second of `SynthScenes.batches` on the calling thread, caches warmed first."""
    warm_caches()
    start = time.perf_counter()
    for _ in SynthScenes(n, seed=12345, image_size=image_size).batches(64):
        pass
    return n / (time.perf_counter() - start)


# ---------------------------------------------------------------- search scenes


def _search_hw(layout: Layout, image_size: tuple[int, int] | None) -> tuple[int, int]:
    """The scene's (H, W): the default for the layout, or `image_size` if its cells are big enough."""
    if layout.kind == "grid":
        hw = image_size or (layout.rows * GRID_CELL_PX, layout.cols * GRID_CELL_PX)
        hw = _image_hw(hw, 1)
        if hw[0] // layout.rows < _MIN_CELL_PX or hw[1] // layout.cols < _MIN_CELL_PX:
            raise UserError(
                f"image size {hw} leaves cells under {_MIN_CELL_PX} px for grid {layout.rows}x{layout.cols}"
            )
        return hw
    return _image_hw(image_size or FREE_SIZE_PX, 32)


def _search_attributes(
    rng: np.random.Generator, n: int, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Categories, palette colours, textures (each int (n,)) and the target index.

    Graded similarity to the target: ~12% of distractors (at least 2) share its category only,
    as many its colour only, a few (n >= 8) both with another texture; the rest come from the
    other categories. No distractor matches the target in all three.
    """
    subset = rng.permutation(len(CATEGORIES))[:k]
    target = int(rng.integers(n))
    tcat, tcol, ttex = (
        int(subset[0]),
        int(rng.integers(len(SEARCH_PALETTE))),
        int(rng.integers(len(TEXTURES))),
    )
    cats = rng.choice(subset[1:] if k > 1 else subset, n)
    cols, texs = rng.integers(len(SEARCH_PALETTE), size=n), rng.integers(len(TEXTURES), size=n)
    order = rng.permutation(np.delete(np.arange(n), target))
    m = len(order)
    share = min(max(2, round(0.12 * m)), m // 2)
    near = min(max(1, m // 40), m - 2 * share) if m >= 7 else 0
    same_cat, same_col, both = order[:share], order[share : 2 * share], order[2 * share : 2 * share + near]
    cats[same_cat] = tcat
    cols[same_cat] = (tcol + 1 + rng.integers(len(SEARCH_PALETTE) - 1, size=share)) % len(SEARCH_PALETTE)
    cols[same_col] = tcol
    cats[both], cols[both] = tcat, tcol
    texs[both] = (ttex + 1 + rng.integers(len(TEXTURES) - 1, size=near)) % len(TEXTURES)
    cats[target], cols[target], texs[target] = tcat, tcol, ttex
    twin = (cats == tcat) & (cols == tcol) & (texs == ttex)
    twin[target] = False
    texs[twin] = (ttex + 1) % len(TEXTURES)
    return cats, cols, texs, target


def _grid_slots(
    rng: np.random.Generator, alphas: list[np.ndarray], layout: Layout, hw: tuple[int, int]
) -> list[tuple[int, int]]:
    """Top-left (y, x) of each object, row-major, each fully inside its cell with a 1 px margin."""
    ys = np.round(np.linspace(0, hw[0], layout.rows + 1)).astype(int)
    xs = np.round(np.linspace(0, hw[1], layout.cols + 1)).astype(int)
    u = rng.random((layout.n_objects, 2))
    slots = []
    for i, alpha in enumerate(alphas):
        r, c = divmod(i, layout.cols)
        room_y = ys[r + 1] - ys[r] - 2 - alpha.shape[0]
        room_x = xs[c + 1] - xs[c] - 2 - alpha.shape[1]
        slots.append((ys[r] + 1 + int(u[i, 0] * (room_y + 1)), xs[c] + 1 + int(u[i, 1] * (room_x + 1))))
    return slots


def _free_slots(
    rng: np.random.Generator, sizes: list[tuple[int, int]], hw: tuple[int, int]
) -> list[tuple[int, int]] | None:
    """Top-left (y, x) of each object with no two boxes within 2 px, or None if one did not fit."""
    placed = np.empty((0, 4))  # y0, x0, y1, x1 with the margin added
    slots = []
    for h, w in sizes:
        cand = np.floor(rng.random((64, 2)) * [hw[0] - h + 1, hw[1] - w + 1])
        y0, x0 = cand[:, :1], cand[:, 1:]
        clash = (y0 < placed[:, 2]) & (y0 + h > placed[:, 0]) & (x0 < placed[:, 3]) & (x0 + w > placed[:, 1])
        free = np.flatnonzero(~clash.any(axis=1))
        if free.size == 0:
            return None
        y, x = int(cand[free[0], 0]), int(cand[free[0], 1])
        placed = np.vstack([placed, [y - 2, x - 2, y + h + 2, x + w + 2]])
        slots.append((y, x))
    return slots


def _search_alphas(
    rng: np.random.Generator, cats: np.ndarray, sides: np.ndarray, max_hw: tuple[int, int]
) -> list[np.ndarray]:
    """Alphas (h, w) of the objects at random rotations and aspects, each within `max_hw`."""
    u = rng.random((len(cats), 2))
    rotations = (u[:, 0] * len(_ROTATIONS_DEG)).astype(int)
    return [
        _shape_alpha(int(c), int(r), float(s), 2 ** ((a - 0.5) * 0.4), max_hw)
        for c, r, s, a in zip(cats, rotations, sides, u[:, 1], strict=True)
    ]


def _place_free(
    rng: np.random.Generator, cats: np.ndarray, layout: Layout, hw: tuple[int, int]
) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """Alphas and non-overlapping positions for a free layout, shrinking objects until they fit."""
    side = min(math.sqrt(0.3 * hw[0] * hw[1] / layout.n_objects), 0.4 * min(hw))
    jitter = 0.8 + 0.35 * rng.random(layout.n_objects)
    for _ in range(12):
        if side < 8:
            break
        alphas = _search_alphas(rng, cats, side * jitter, hw)
        order = np.argsort([-a.size for a in alphas], kind="stable")  # big ones first pack better
        slots = _free_slots(rng, [alphas[i].shape for i in order], hw)
        if slots is not None:
            return alphas, [slots[j] for j in np.argsort(order, kind="stable")]
        side *= 0.85
    raise UserError(
        f"{layout.n_objects} objects do not fit without overlap in a {hw[0]}x{hw[1]} image; use fewer"
    )


def _draw_shelves(img: np.ndarray, rows: int) -> None:
    """Dark shelf boards along the grid's row boundaries (supermarket-shelf look)."""
    for y in np.round(np.linspace(0, img.shape[0], rows + 1)).astype(int)[1:-1]:
        board = img[max(y - 1, 0) : y + 1]
        board *= np.float32(0.55)


def search_scene(
    seed: int,
    index: int,
    layout: str = DEFAULT_LAYOUT,
    image_size: tuple[int, int] | None = None,
    n_categories: int | None = None,
) -> SearchScene:
    """Visual-search scene (seed, index): image uint8 (H, W, 3), objects, target index.

    `grid:RxC` puts one object per cell, row-major (default size 32 px per cell), `free:N`
    scatters N non-overlapping objects (default 256x256). Categories come from a random subset
    of `n_categories` (default all); colours from `SEARCH_PALETTE`.
    """
    spec = parse_layout(layout)
    hw = _search_hw(spec, image_size)
    k = len(CATEGORIES) if n_categories is None else n_categories
    if not 1 <= k <= len(CATEGORIES) or seed < 0 or index < 0:
        raise UserError(
            f"need 1 <= n_categories <= {len(CATEGORIES)}, seed >= 0, index >= 0; got {k}, {seed}, {index}"
        )
    rng = np.random.default_rng([seed, index, 1])  # the 1 keeps it apart from labelled image (seed, index)
    img = _background(rng, hw, _SEARCH_BACKDROP)
    _scatter_strokes(rng, img, int(2 * hw[0] * hw[1] / 96**2))
    cats, cols, texs, target = _search_attributes(rng, spec.n_objects, k)
    if spec.kind == "grid":
        _draw_shelves(img, spec.rows)
        cell = (hw[0] // spec.rows - 2, hw[1] // spec.cols - 2)
        alphas = _search_alphas(rng, cats, min(cell) * (0.62 + 0.23 * rng.random(spec.n_objects)), cell)
        slots = _grid_slots(rng, alphas, spec, hw)
    else:
        alphas, slots = _place_free(rng, cats, spec, hw)
    objects = []
    for i, (alpha, (y, x)) in enumerate(zip(alphas, slots, strict=True)):
        colour = np.array(SEARCH_PALETTE[cols[i]], np.float32)
        box = _paint_object(img, alpha, y, x, colour, int(texs[i]), rng.random(3))
        cell_rc = divmod(i, spec.cols) if spec.kind == "grid" else None
        objects.append(SceneObject(int(cats[i]), SEARCH_PALETTE[cols[i]], int(texs[i]), box, cell_rc))
    meta: dict[str, object] = {
        "layout": layout,
        "seed": seed,
        "index": index,
        "categories": sorted({CATEGORIES[c] for c in cats}),
    }
    grid = (spec.rows, spec.cols) if spec.kind == "grid" else None
    return SearchScene(image=_to_uint8(img), objects=tuple(objects), target=target, grid=grid, meta=meta)


class SynthSearch:
    """n visual-search scenes rendered on demand from (seed, index); see `search_scene`."""

    def __init__(
        self,
        n: int,
        seed: int = 0,
        layout: str = DEFAULT_LAYOUT,
        image_size: tuple[int, int] | None = None,
        n_categories: int | None = None,
    ) -> None:
        if n < 1 or seed < 0:
            raise UserError(f"SynthSearch needs n >= 1 and seed >= 0, got n={n}, seed={seed}")
        parse_layout(layout)  # fail at construction, not at the first item
        self.n, self.seed, self.layout = n, seed, layout
        self.image_size, self.n_categories = image_size, n_categories

    def __len__(self) -> int:
        """Number of scenes n."""
        return self.n

    def __getitem__(self, i: int) -> SearchScene:
        """Scene i as a `SearchScene` (image uint8 (H, W, 3))."""
        if not -self.n <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} scenes")
        return search_scene(self.seed, i % self.n, self.layout, self.image_size, self.n_categories)

    def __iter__(self) -> Iterator[SearchScene]:
        """Yields the n scenes in order."""
        return (self[i] for i in range(self.n))


# ---------------------------------------------------------------- helpers for consumers


def crop(
    scene_or_image: SearchScene | LabelledImage | np.ndarray, box: Box, size: tuple[int, int] = (32, 32)
) -> np.ndarray:
    """Bilinear resample of `box` (x0, y0, x1, y1, pixels) to `size` (h, w): uint8 (h, w, 3).

    Parts of the box outside the image repeat the border pixels.
    """
    img = scene_or_image if isinstance(scene_or_image, np.ndarray) else scene_or_image.image
    x0, y0, x1, y1 = (float(c) for c in box)
    if not (x1 > x0 and y1 > y0 and size[0] >= 1 and size[1] >= 1):
        raise UserError(f"crop needs a box with x1 > x0, y1 > y0 and a positive size; got {box}, {size}")
    ys = _sample_axis(y0, y1, size[0], img.shape[0])
    xs = _sample_axis(x0, x1, size[1], img.shape[1])
    src = img.astype(np.float32)
    rows = src[ys[0]] * (1 - ys[2])[:, None, None] + src[ys[1]] * ys[2][:, None, None]
    out = rows[:, xs[0]] * (1 - xs[2])[None, :, None] + rows[:, xs[1]] * xs[2][None, :, None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _sample_axis(lo: float, hi: float, n: int, limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear taps along one axis: lower index, upper index (intp (n,)) and weight (float32 (n,))."""
    pos = np.clip(lo + (np.arange(n) + 0.5) * (hi - lo) / n - 0.5, 0, limit - 1)
    low = np.floor(pos).astype(np.intp)
    return low, np.minimum(low + 1, limit - 1), (pos - low).astype(np.float32)


def object_similarity(a: SceneObject, b: SceneObject) -> float:
    """Appearance similarity in 0..1: 0.6 for the same category, up to 0.3 for close colours, 0.1 same texture.

    Colour similarity is a Gaussian of the RGB distance (sigma 80), so palette neighbours such
    as red and orange still count a little and unrelated colours hardly at all.
    """
    dist2 = sum((int(p) - int(q)) ** 2 for p, q in zip(a.color, b.color, strict=True))
    colour = math.exp(-dist2 / (2 * 80.0**2))
    return 0.6 * (a.category == b.category) + 0.3 * colour + 0.1 * (a.texture == b.texture)


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write uint8 (H, W, 3) `image` to `path` as PNG; returns the path."""
    from PIL import Image  # only here: rendering itself stays numpy-only

    path = Path(path)
    Image.fromarray(np.ascontiguousarray(image)).save(path, format="PNG")
    return path


# ---------------------------------------------------------------- dataset specs
