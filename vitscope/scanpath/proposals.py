"""Object proposals and per-object features for uploaded scenes, read off the ViT itself.

`propose_boxes` clusters the last block's patch tokens (token features plus a little grid
position, seeded k-means) and boxes each connected region of a cluster on the patch grid;
regions that cover much of the image (background, shelves) are dropped. `object_features`
pools the same tokens inside given boxes: the "vit" appearance of the OAT model.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from scipy import ndimage

from vitscope.contracts.errors import UserError
from vitscope.scanpath.trials import Trial
from vitscope.vit.models import LoadedModel, intervene

MAX_SIDE = 512
POSITION_WEIGHT = 0.5
MAX_REGION_SHARE = 0.2


def last_patch_tokens(lm: LoadedModel, image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
    """Last block's patch tokens (h, w, D) for `image` (H, W, 3) uint8 at a patch-multiple size near
    its own (interpolated positions), and that input size (height, width)."""
    tokens, size_hw = last_patch_tokens_batch(lm, image[None])
    return tokens[0], size_hw


def last_patch_tokens_batch(lm: LoadedModel, images: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
    """`last_patch_tokens` of same-size images (B, H, W, 3) in one forward pass: (B, h, w, D) on the CPU."""
    p = lm.layout.patch_size
    scale = min(1.0, MAX_SIDE / max(images.shape[1:3]))
    h, w = (max(p, round(side * scale / p) * p) for side in images.shape[1:3])
    size_hw = (int(h), int(w))
    layout = lm.layout_for(size_hw)
    last = lm.num_layers - 1
    with torch.no_grad(), intervene(lm.parts, record_outputs=[last]) as rec:
        lm.forward(lm.preprocess(images, size_hw))
    tokens = layout.patches(rec.outputs[last].float(), 1)
    return layout.to_grid(tokens, dim=1).cpu(), size_hw


def propose_boxes(lm: LoadedModel, image: np.ndarray, k: int = 8, seed: int = 0) -> np.ndarray:
    """Candidate object boxes (M, 4) x0, y0, x1, y1 in `image` pixels, sorted in reading order."""
    grid_tokens, _size = last_patch_tokens(lm, image)
    h, w, _ = grid_tokens.shape
    labels = _cluster(grid_tokens, k, seed).reshape(h, w)
    sy, sx = image.shape[0] / h, image.shape[1] / w
    boxes = []
    for c in range(k):
        regions, n = ndimage.label(labels == c)
        for region in ndimage.find_objects(regions)[:n]:
            ys, xs = region
            area = (ys.stop - ys.start) * (xs.stop - xs.start)
            if 2 <= area <= MAX_REGION_SHARE * h * w:
                boxes.append((xs.start * sx, ys.start * sy, xs.stop * sx, ys.stop * sy))
    if not boxes:
        return np.zeros((0, 4))
    out = np.asarray(sorted(set(boxes), key=lambda b: (round(b[1] / (4 * sy)), b[0])), dtype=np.float64)
    return out


def _cluster(grid_tokens: torch.Tensor, k: int, seed: int, iters: int = 25) -> np.ndarray:
    """Seeded k-means labels (h*w,) of normalized token features with a weight on grid position."""
    h, w, _ = grid_tokens.shape
    feats = torch.nn.functional.normalize(grid_tokens.reshape(h * w, -1), dim=1)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    x = torch.cat([feats, POSITION_WEIGHT * torch.stack([yy.flatten(), xx.flatten()], 1)], dim=1)
    g = torch.Generator().manual_seed(seed)
    centres = x[torch.randperm(len(x), generator=g)[: min(k, len(x))]].clone()
    for _ in range(iters):
        assign = torch.cdist(x, centres).argmin(1)
        for c in range(len(centres)):
            members = x[assign == c]
            if len(members):
                centres[c] = members.mean(0)
    return torch.cdist(x, centres).argmin(1).numpy()


def object_features(lm: LoadedModel, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Mean last-block patch token (N, D) inside each box (the patches whose centres fall in it)."""
    grid_tokens, _size = last_patch_tokens(lm, image)
    return pool_boxes(grid_tokens.numpy(), image.shape[:2], boxes)


def with_object_features(lm: LoadedModel, trials: Sequence[Trial], batch_size: int = 64) -> list[Trial]:
    """`trials` with `features` set to `object_features` of their images, in batched forward passes.

    Trials are batched by image size; every trial needs an `image`.
    """
    images = []
    for i, t in enumerate(trials):
        if t.image is None:
            raise UserError(f"trial {t.trial_id or i}: the ViT appearance needs the scene image")
        images.append(t.image)
    by_size: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, image in enumerate(images):
        by_size[image.shape].append(i)
    features: list[np.ndarray] = [np.zeros(0)] * len(trials)
    for idx in by_size.values():
        for start in range(0, len(idx), batch_size):
            chunk = idx[start : start + batch_size]
            tokens, _size = last_patch_tokens_batch(lm, np.stack([images[i] for i in chunk]))
            for i, grid_tokens in zip(chunk, tokens.numpy(), strict=True):
                features[i] = pool_boxes(grid_tokens, images[i].shape[:2], trials[i].boxes)
    return [replace(t, features=f) for t, f in zip(trials, features, strict=True)]


def pool_boxes(tokens: np.ndarray, image_hw: tuple[int, ...], boxes: np.ndarray) -> np.ndarray:
    """Mean token (N, D) of grid tokens (h, w, D) inside each box given in image pixels (H, W)."""
    h, w, d = tokens.shape
    cy = (np.arange(h) + 0.5) * image_hw[0] / h
    cx = (np.arange(w) + 0.5) * image_hw[1] / w
    out = np.zeros((len(boxes), d), dtype=np.float32)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        rows = (cy >= y0) & (cy < y1)
        cols = (cx >= x0) & (cx < x1)
        if not rows.any() or not cols.any():  # a box smaller than a patch: its nearest patch
            rows = np.abs(cy - (y0 + y1) / 2) == np.abs(cy - (y0 + y1) / 2).min()
            cols = np.abs(cx - (x0 + x1) / 2) == np.abs(cx - (x0 + x1) / 2).min()
        out[i] = tokens[np.ix_(rows, cols)].reshape(-1, d).mean(0)
    return out
